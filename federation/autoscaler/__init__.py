"""Autoscaling: capacity planning (pure) and its executor."""
