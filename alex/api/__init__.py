"""HTTP API blueprints: tasks, sessions, the event stream and operations."""
