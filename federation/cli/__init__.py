"""The `federation` command line."""
