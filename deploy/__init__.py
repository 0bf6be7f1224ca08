"""Running the chat as a scale-out stack: nginx in front of several daphne workers that
share Redis and PostgreSQL (docs/deploy.md)."""
