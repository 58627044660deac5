"""federation: one control plane for on-prem racks and cloud instances."""

__version__ = "0.1.0"
