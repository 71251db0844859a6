"""Recorded state: the model, and the stores that keep it (local file, PostgreSQL)."""
