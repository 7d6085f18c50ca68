"""Ops API: auth, the audit trail (events, deliveries, Braze requests) and replay."""
