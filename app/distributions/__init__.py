"""Distributions: what an operator configures, and the mapping to Braze custom attributes."""
