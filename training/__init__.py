"""training application package (see README)."""
