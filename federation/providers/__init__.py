"""Provider plugins: where nodes come from (local, on-prem, AWS, GCP)."""
