"""realtime application package (see README)."""
