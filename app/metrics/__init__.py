"""Prometheus metrics: per-process counters (multiprocess-safe) and the Postgres-held state."""
