"""Node agent and task drivers."""
