"""``World.degrade``: a service made degraded or down through its emulator's own switches, as the
team sees it with ``/cpn services``, then restored."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bot.sandbox.world import Timings, World
from tests.support.mattermost import User, text_of

SERVICES = {
    # World.degrade's name: the name /cpn services shows
    "gitlab": "GitLab",
    "vault": "Vault",
    "sonarqube": "SonarQube",
    "nexus": "Nexus",
    "quay": "Quay",
    "argocd": "ArgoCD",
}
# Where the probe tells a degraded service from a failing one (services/health.py); elsewhere a
# degraded service may show as failing (e.g. a sealed Vault answers 503).
DEGRADED_EXACTLY = {"sonarqube", "nexus"}


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    w = World.create(timings=Timings.fast()).start()
    try:
        yield w
    finally:
        w.stop()


def services(world: World) -> dict[str, str]:
    """Service → its label in ``/cpn services``, typed by bob in ~equipe-alpha."""
    text = text_of(User(world, "bob").run("/cpn services"))
    found = dict(re.findall(r"\*\*(\w+)\*\* : ([^(\n]+?) \(", text))
    assert set(SERVICES.values()) | {"Mattermost"} <= set(found), text
    return found


def test_everything_is_ok_at_first(world: World) -> None:
    assert set(services(world).values()) == {"OK"}


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_service_degraded_then_down_then_restored(world: World, name: str) -> None:
    shown = SERVICES[name]
    try:
        world.degrade(name)
        labels = services(world)
        expected = {"Dégradé"} if name in DEGRADED_EXACTLY else {"Dégradé", "En échec"}
        assert labels[shown] in expected, labels
        assert all(label == "OK" for service, label in labels.items() if service != shown), labels

        world.degrade(name, "down")
        labels = services(world)
        assert labels[shown] == "En échec", labels
        assert all(label == "OK" for service, label in labels.items() if service != shown), labels
    finally:
        world.degrade(name, "ok")
    assert set(services(world).values()) == {"OK"}


def test_mattermost_and_unknown_names_are_refused(world: World) -> None:
    for how in ("degraded", "down"):
        with pytest.raises(ValueError, match="Mattermost"):
            world.degrade("mattermost", how)
    world.degrade("Mattermost", "ok")  # nothing to undo, but allowed
    with pytest.raises(ValueError, match="unknown service"):
        world.degrade("jenkins")
    with pytest.raises(ValueError, match="unknown state"):
        world.degrade("gitlab", "broken")
    assert set(services(world).values()) == {"OK"}
