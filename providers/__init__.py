"""Upstream protocols: one module per wire protocol, pure translation plus a registry."""
