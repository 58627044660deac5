"""Raft wiring on pysyncobj: journal, snapshots, group commit, leadership."""
