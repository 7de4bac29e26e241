"""One module per command group. Importing this package declares every command."""

from commands import help, whoami

__all__ = ["help", "whoami"]
