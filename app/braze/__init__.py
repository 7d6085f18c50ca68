"""Braze: the /users/track client, payload rules, response classification, rate limiting."""
