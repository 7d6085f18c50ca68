"""Delivery: the outbox queue, the worker cycle, coalescing, retries, attribute_state."""
