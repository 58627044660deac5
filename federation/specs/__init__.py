"""User-facing specs (jobs, pools): validated at the edge, stored as plain dicts."""
