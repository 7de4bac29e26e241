"""One module per command group. Importing this package declares every command."""

from commands import (
    deploy,
    env,
    help,
    member,
    project,
    quality,
    repo,
    scan,
    secret,
    subscribe,
    support,
    sync,
    token,
    whoami,
)

__all__ = [
    "deploy",
    "env",
    "help",
    "member",
    "project",
    "quality",
    "repo",
    "scan",
    "secret",
    "subscribe",
    "support",
    "sync",
    "token",
    "whoami",
]
