"""Maintainers' scripts (the README's picture)."""
