"""Benchmarks of alex's SSE fan-out and task path against a naive Flask broadcaster (`make bench`)."""
