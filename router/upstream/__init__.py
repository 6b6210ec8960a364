"""Reaching the providers: dispatch (pick, retry, fail over, cool down), the HTTP call,
the stream relay, backpressure, SSRF-guarded fetches."""
