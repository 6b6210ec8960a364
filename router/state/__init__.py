"""Limits and metering, in-process or shared by every replica in Redis."""
