"""Manual distributions: runs to a segment or a list of customers, after a delay."""
