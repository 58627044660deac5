"""Scheduling: feasibility, ranking and placement plans (pure decision code)."""
