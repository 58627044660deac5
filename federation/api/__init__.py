"""HTTP API: FastAPI app, auth, validation, tracing and metrics."""
