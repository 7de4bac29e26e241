"""Worlds several test modules share, built one way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.sandbox.world import Timings, World
from tests.support.mattermost import User


@contextmanager
def alpha_with_api() -> Iterator[World]:
    """A started world where bob has created project alpha and added its repository api."""
    world = World.create(timings=Timings.fast()).start()
    try:
        bob = User(world, "bob")
        bob.run("/cpn project create alpha")
        world.wait_idle(30)
        bob.run("/cpn repo add alpha api")
        world.wait_idle(30)
        yield world
    finally:
        world.stop()
