"""What clients talk to: handlers per ingress protocol, auth, validation, errors, admin."""
