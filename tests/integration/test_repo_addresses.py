"""Repository URLs and branch names from the user's side: the slash command, the sync API, the mirror.

Host names resolve through a table the test controls (``world.bot.address_policy``'s resolver):
no test asks public DNS.
"""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from bot.sandbox.world import Timings, World
from tests.conftest import wait_for
from tests.support import platform as svc
from tests.support.mattermost import User

DNS: dict[str, list[str]] = {}
PUBLIC = "140.82.121.3"


async def _resolve(host: str) -> list[str]:
    if host not in DNS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return list(DNS[host])


def _with_test_dns(world: World) -> World:
    assert world.bot is not None
    world.bot.address_policy = dataclasses.replace(world.bot.address_policy, resolver=_resolve)
    return world


@pytest.fixture(scope="module")
def beta() -> Iterator[World]:
    world = _with_test_dns(World.create(timings=Timings.fast()).start())
    try:
        User(world, "bob").run("/cpn project create beta")
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


@pytest.fixture(autouse=True)
def _fresh_dns() -> Iterator[None]:
    DNS.clear()
    DNS["forge.example"] = [PUBLIC]
    yield
    DNS.clear()


def mirror_pipelines(world: World) -> int:
    gitlab = world.states["gitlab"]
    with gitlab.lock:
        return sum(1 for p in gitlab.pipelines.values() if p.variable("PROJECT_NAME"))


@pytest.mark.parametrize(
    "host",
    [
        "100.100.100.200",  # cloud metadata, in 100.64.0.0/10
        "100.64.0.1",
        "127.1",
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[2002:7f00:1::1]",  # 6to4 of 127.0.0.1
        "[64:ff9b::a9fe:a9fe]",  # NAT64 of 169.254.169.254
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
        "[::7f00:1]",
        "[fd00::1]",
        "metadata.example",  # a name that resolves to the metadata address
    ],
)
def test_internal_addresses_in_any_spelling_are_refused(beta: World, host: str) -> None:
    DNS["metadata.example"] = ["100.100.100.200"]  # the forge.example default stays public
    answer = User(beta, "bob").run(f"/cpn repo add beta api --url https://{host}/x/y.git")["text"]
    assert "adresse interne" in answer, answer
    assert beta.bot is not None and beta.bot.projects.repository(beta.bot.projects.get("beta").id, "api") is None  # type: ignore[union-attr]


def test_a_name_resolving_to_one_internal_address_among_public_ones_is_refused(beta: World) -> None:
    DNS["forge.example"] = [PUBLIC, "10.0.0.7"]
    answer = User(beta, "bob").run("/cpn repo add beta api --url https://forge.example/x/y.git")["text"]
    assert "adresse interne" in answer and "10.0.0.7" in answer


def test_a_port_other_than_https_is_refused(beta: World) -> None:
    DNS["forge.example"] = [PUBLIC]
    answer = User(beta, "bob").run("/cpn repo add beta api --url https://forge.example:6379/x/y.git")["text"]
    assert "port" in answer


@pytest.mark.parametrize(
    "url",
    [
        "https://:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y.git",
        "https://ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y.git",
        "https://u:ghp_abcdefghijklmnopqrstuvwxyz0123456789@github.com/x/y.git",
        "https://ghp_abcdefghijklmnopqrstuvwxyz0123456789:@github.com/x/y.git",
    ],
)
def test_credentials_in_the_url_are_refused_unechoed_and_pointed_to_the_dialog(beta: World, url: str) -> None:
    answer = User(beta, "bob").run(f"/cpn repo add beta api --url {url}")["text"]
    assert "--private" in answer and "aucun identifiant" in answer, answer
    assert "ghp_" not in answer
    store = beta.store()
    dumped = json.dumps([list(r) for r in store.db.execute("SELECT * FROM repositories").fetchall()])
    dumped += json.dumps([list(r) for r in store.db.execute("SELECT * FROM audit").fetchall()])
    assert "ghp_" not in dumped


@pytest.mark.parametrize(
    "url", ["https://github.com/x/$(id).git", "https://github.com/x/y.git?x=1", "https://github.com/x/y;z.git"]
)
def test_shell_or_query_characters_in_the_url_are_refused(beta: World, url: str) -> None:
    assert (
        "n'est pas une URL de dépôt acceptée" in User(beta, "bob").run(f"/cpn repo add beta api --url '{url}'")["text"]
    )


@pytest.fixture(scope="module")
def synced() -> Iterator[World]:
    """Project alpha with ``api`` synchronised from ``forge.example`` (public when each test starts)."""
    world = _with_test_dns(World.create(timings=Timings.fast()).start())
    try:
        DNS["forge.example"] = [PUBLIC]
        bob = User(world, "bob")
        bob.run("/cpn project create alpha")
        world.wait_idle(30)
        added = bob.run("/cpn repo add alpha api --url https://forge.example/ministere/api.git")["text"]
        assert "Ajout du dépôt" in added
        wait_for(lambda: mirror_pipelines(world) == 1, 30, "the first sync")
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


@pytest.fixture
def token(synced: World) -> str:
    """A fresh CI token per test: the sync API allows a few calls per token and minute."""
    shown = User(synced, "bob").run("/cpn token create alpha")["text"]
    return next(line for line in shown.splitlines() if line.startswith("cpn_"))


def _api_sync(world: World, token: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{world.bot_url}/api/v1/projects/alpha/repositories/api/sync",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


def test_a_host_re_pointed_at_an_internal_address_is_refused_at_the_next_sync(synced: World, token: str) -> None:
    bob = User(synced, "bob")
    before = mirror_pipelines(synced)
    DNS["forge.example"] = ["169.254.169.254"]  # DNS rebinding after the repository was added
    answer = bob.run("/cpn sync alpha api")["text"]
    assert "adresse interne" in answer and "169.254.169.254" in answer, answer
    refused = _api_sync(synced, token, {"branch": "main"})
    assert refused.status_code == 422 and refused.json()["reason"] == "internal"
    assert mirror_pipelines(synced) == before  # nothing triggered


@pytest.mark.parametrize("branch", ["$(id)", "`id`", "a;id", "x|y", "'q'", ".hidden", "x..y", "HEAD", "a b", "feat/é"])
def test_branches_with_shell_or_git_metacharacters_never_reach_ci(synced: World, token: str, branch: str) -> None:
    bob = User(synced, "bob")
    before = mirror_pipelines(synced)
    quoted = "'" + branch.replace("'", "'\"'\"'") + "'" if "'" not in branch else '"' + branch + '"'
    assert "n'est pas un nom de branche valide" in bob.run(f"/cpn sync alpha api --branch {quoted}")["text"]
    assert _api_sync(synced, token, {"branch": branch}).status_code == 422
    assert mirror_pipelines(synced) == before


def test_a_branch_git_accepts_is_synchronised(synced: World) -> None:
    before = mirror_pipelines(synced)
    assert "Synchronisation" in User(synced, "bob").run("/cpn sync alpha api --branch release/2.1")["text"]
    wait_for(lambda: mirror_pipelines(synced) == before + 1, 10, "the sync of release/2.1")


def test_an_internal_forge_allowed_by_the_platform_is_accepted(make_world: Callable[..., World]) -> None:
    world = _with_test_dns(
        make_world(
            config_overrides={
                "repositories": {"allowed_hosts": ["*.interne.example"], "allowed_networks": ["10.20.0.0/16"]}
            }
        )
    )
    DNS.update({"forge.interne.example": ["10.9.9.9"], "other.example": ["10.20.1.2"], "bad.example": ["10.21.0.1"]})
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    assert "Ajout du dépôt" in bob.run("/cpn repo add alpha api --url https://forge.interne.example/a/b.git")["text"]
    assert "Ajout du dépôt" in bob.run("/cpn repo add alpha web --url https://other.example/a/b.git")["text"]
    assert "adresse interne" in bob.run("/cpn repo add alpha cli --url https://bad.example/a/b.git")["text"]


@pytest.mark.parametrize(
    ("command", "suggestion"),
    [
        ("/cpn project create EtatCivil", "`etatcivil`"),
        ("/cpn project create état-civil", "`etatcivil`"),
        ("/cpn repo add beta Mon_API", "`mon-api`"),
        ("/cpn repo add beta front.end--web", "`front-end-web`"),
        ("/cpn env add beta Recette --stage dev", "`recette`"),
        ("/cpn project create ministeredelinterieur2026", "`ministeredelinterieu`"),  # 20 at most
        ("/cpn env add beta Développement --stage dev", "`developpeme`"),  # 11 at most
        ("/cpn repo add beta application-de-gestion-titres", "`application-de-gesti`"),
    ],
)
def test_a_bad_name_gets_the_rule_and_a_corrected_suggestion(beta: World, command: str, suggestion: str) -> None:
    answer = User(beta, "bob").run(command)["text"]
    assert "caractères" in answer and f"Essayez {suggestion}" in answer, answer


@pytest.mark.parametrize(
    ("submission", "field"),
    [
        ({"username": "x$(id)", "token": "ghp_fine0123456789"}, "username"),
        ({"username": "a b", "token": ""}, "username"),
        ({"username": "reader", "token": "tok`id`en"}, "token"),
        ({"username": "reader", "token": "tok en; rm"}, "token"),
    ],
)
def test_dialog_credentials_that_a_shell_would_read_are_refused_unechoed(
    beta: World, submission: dict[str, str], field: str
) -> None:
    bob = User(beta, "bob")
    assert "fenêtre" in bob.run("/cpn repo add beta lib --url https://github.com/x/lib.git --private")["text"]
    answer = svc.submit_dialog(beta, "bob", submission)
    assert field in answer.get("errors", {}), answer
    assert submission[field] not in json.dumps(answer)
    assert beta.bot is not None
    project = beta.bot.projects.get("beta")
    assert project is not None and beta.bot.projects.repository(project.id, "lib") is None


def test_a_url_stored_before_the_rules_with_credentials_is_not_synchronised(synced: World) -> None:
    store = synced.store()
    (url,) = store.db.execute("SELECT external_url FROM repositories WHERE name = 'api'").fetchone()
    legacy = "https://:ghp_legacy0123456789abcdef@forge.example/ministere/api.git"
    store.db.execute("UPDATE repositories SET external_url = ? WHERE name = 'api'", (legacy,))
    store.db.conn.commit()
    before = mirror_pipelines(synced)
    try:
        answer = User(synced, "bob").run("/cpn sync alpha api")["text"]
        assert "n'est plus acceptée" in answer and "--private" in answer and "ghp_" not in answer
        assert mirror_pipelines(synced) == before
    finally:
        store.db.execute("UPDATE repositories SET external_url = ? WHERE name = 'api'", (url,))
        store.db.conn.commit()
