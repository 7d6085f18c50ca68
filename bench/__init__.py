"""Benchmarks (`make bench`): each scenario is measured against a baseline in the same run."""
