"""Pure replicated state machine: commands in, deterministic results out."""
