"""Webhook intake: signature, envelope, dedupe, the durable inbox."""
