"""Server-Sent Event streams: the per-process broadcaster, the pump for idle streams, the SSE encoding."""
