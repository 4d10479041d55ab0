"""export application package (see README)."""
