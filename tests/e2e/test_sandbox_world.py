"""``World.degrade``: a service made degraded or down through its emulator's own switches, as the
team sees it with ``/cpn services``, then restored."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.sandbox.world import Timings, World
from tests.support.mattermost import User, channel_posts, text_of

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


def test_a_persistent_world_resumes_its_platform_on_the_same_urls(tmp_path: Path) -> None:
    first = World(tmp_path, timings=Timings.fast(), persist=True, keep_files=True).start()
    try:
        User(first, "bob").run("/cpn project create alpha")
        first.wait_idle(30)
        posts = channel_posts(first, "equipe-alpha")
        urls = {name: server.url for name, server in first.servers.items()} | {"cpn-bot": first.bot_url}
        state = first.state_file()
    finally:
        first.stop()
    assert {p.name for p in tmp_path.iterdir()} >= {"cpn-bot.sqlite", "platform.pickle", "world.json"}
    assert (tmp_path / "world.json").stat().st_mode & 0o077 == 0

    second = World(tmp_path, timings=Timings.fast(), persist=True, keep_files=True).start()
    try:
        assert second.resumed
        assert {name: server.url for name, server in second.servers.items()} | {"cpn-bot": second.bot_url} == urls
        assert second.state_file() == state  # the same ids and tokens
        assert channel_posts(second, "equipe-alpha") == posts
        assert "Dépôts" in text_of(User(second, "bob").run("/cpn project show alpha"))
        # The resumed platform works on: a repository added now gets its GitLab project and its line.
        User(second, "bob").run("/cpn repo add alpha api")
        second.wait_idle(30)
        assert second._gitlab_project(f"{second.servers['gitlab'].url}/forge/projects/alpha/api.git") is not None
        assert channel_posts(second, "equipe-alpha")[-1]["message"] == "Dépôt `api` ajouté par @bob."
    finally:
        second.stop()


def test_a_persistent_world_refuses_another_registry(tmp_path: Path) -> None:
    World(tmp_path, timings=Timings.fast(), persist=True, keep_files=True).start().stop()
    harbor = World(
        tmp_path,
        timings=Timings.fast(),
        persist=True,
        keep_files=True,
        config_overrides={"platform": {"registry": "harbor"}},
    )
    with pytest.raises(ValueError, match="quay as its registry"):
        harbor.start()
