"""One module per command group. Importing this package declares every command."""

from commands import (
    connect,
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
    "connect",
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
