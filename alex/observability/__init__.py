"""Observability: request ids bound to log lines (context), Prometheus metrics (metrics) and the Flask hooks that
wire both to the app (web). The package root imports nothing, so the agent can use `context` without Flask."""
