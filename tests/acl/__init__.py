"""Access control, credentials and TLS."""
