"""Fixtures shared by every test package."""

# The private PostgreSQL server (fixtures `postgres_server`, `postgres_url`), started at most
# once per session and only when a test asks for it.
pytest_plugins = ["tests.postgres_server"]
