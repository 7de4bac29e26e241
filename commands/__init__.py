"""One module per command group. Importing this package declares every command."""

from commands import env, help, member, project, repo, secret, subscribe, sync, token, whoami

__all__ = ["env", "help", "member", "project", "repo", "secret", "subscribe", "sync", "token", "whoami"]
