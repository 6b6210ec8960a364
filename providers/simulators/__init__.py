"""Simulators that speak each provider's real wire protocol, for `demo`, tests and bench."""
