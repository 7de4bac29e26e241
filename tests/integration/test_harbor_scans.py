"""Harbor scans pushed images with its own Trivy and says so by webhook (issue 13, item 6): the bot
fetches the report and posts the same scan card as for /hooks/trivy, in the pipeline's thread."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.sandbox.world import Timings, World
from bot.workflows.naming import derive
from services.emulators.harbor import State
from tests.conftest import wait_for
from tests.support.mattermost import User, channel_posts

VULNERABILITIES = [
    {"id": "CVE-2026-0001", "package": "openssl", "version": "3.0.1", "fix_version": "3.0.9", "severity": "Critical"},
    {"id": "CVE-2026-0002", "package": "zlib", "version": "1.2.11", "fix_version": "1.2.13", "severity": "High"},
    {"id": "CVE-2026-0003", "package": "musl", "version": "1.1.20", "severity": "High"},
    {"id": "CVE-2026-0004", "package": "busybox", "version": "1.30", "severity": "Low"},
]


@pytest.fixture(scope="module")
def harbor_world() -> Iterator[World]:
    world = World.create(timings=Timings.fast(), config_overrides={"platform": {"registry": "harbor"}}).start()
    try:
        bob = User(world, "bob")
        for slug in ("alpha", "beta"):
            bob.run(f"/cpn project create {slug}")
            world.wait_idle(30)
        bob.run("/cpn repo add alpha api --url https://github.com/ministere/api.git")
        wait_for(
            lambda: world.states["gitlab"].quiet and world.states["gitlab"].pipelines_of("forge/projects/alpha/api"),
            timeout=20,
            what="the build",
        )
        world.wait_idle(30)
        yield world
    finally:
        world.stop()


def harbor(world: World) -> State:
    state: State = world.states["harbor"]
    return state


def auth_header(world: World, slug: str) -> str:
    """What onboarding registered on the project's Harbor project, as Harbor will send it."""
    project = harbor(world).project(slug)
    assert project is not None
    return str(project.webhooks[0].targets[0]["auth_header"])


def cards(world: World) -> list[dict[str, Any]]:
    posts = channel_posts(world, "equipe-alpha")
    return [a for p in posts for a in (p.get("props") or {}).get("attachments") or [] if "Trivy" in a.get("title", "")]


def scanned(world: World, repository: str, tag: str, failed: bool = False) -> None:
    """A CI push of ``repository:tag`` then Harbor's scan of it; the bot has handled the webhooks."""
    state = harbor(world)
    digest = state.push_image("alpha", repository, tag)
    state.scan_fails = failed
    try:
        state.scan("alpha", repository, digest, VULNERABILITIES)
    finally:
        state.scan_fails = False
    assert all(d.status == 202 for d in state.wait_deliveries())
    world.wait_idle()


def event(slug: str = "alpha", repository: str = "api", kind: str = "SCANNING_COMPLETED") -> dict[str, Any]:
    return {
        "type": kind,
        "occur_at": 1_700_000_000,
        "operator": "auto",
        "event_data": {
            "resources": [{"digest": "sha256:" + "0" * 64, "tag": "1.0"}],
            "repository": {"name": repository, "namespace": slug, "repo_full_name": f"{slug}/{repository}"},
        },
    }


def post(world: World, body: object, authorization: str) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{world.bot_url}/hooks/harbor", content=raw, headers={"Authorization": authorization})


def test_the_state_file_has_harbor_in_place_of_quay_and_its_secret_signs_the_projects_hook(
    harbor_world: World,
) -> None:
    state = harbor_world.state_file()
    assert "quay" not in state
    entry = state["harbor"]
    assert entry["url"] == harbor_world.servers["harbor"].url
    assert harbor(harbor_world).login_ok("admin", entry["token"])
    # The master secret, as for the other services: the project's webhook secret derives from it.
    assert auth_header(harbor_world, "alpha") == "Bearer " + derive(entry["secret"].encode(), "harbor", "alpha")


def test_onboarding_registers_the_scan_webhook_on_the_projects_harbor_project(harbor_world: World) -> None:
    project = harbor(harbor_world).project("alpha")
    assert project is not None and len(project.webhooks) == 1
    policy = project.webhooks[0]
    assert policy.event_types == ["PUSH_ARTIFACT", "SCANNING_COMPLETED", "SCANNING_FAILED"]
    assert policy.targets[0]["address"] == f"{harbor_world.bot_url}/hooks/harbor"
    assert auth_header(harbor_world, "alpha") != auth_header(harbor_world, "beta")  # one secret per project


@pytest.mark.parametrize("repository", ["api", "team/web"])
def test_a_scan_harbor_completed_gives_the_scan_card_with_exact_counts(harbor_world: World, repository: str) -> None:
    scanned(harbor_world, repository, f"1.{len(cards(harbor_world))}")
    card = cards(harbor_world)[-1]
    assert f"alpha/{repository}:" in card["title"]
    text = card["text"]
    assert "Critique **1**" in text and "Haute **2**" in text and "Basse **1**" in text and "Moyenne **0**" in text
    assert "Corrigeables : 2 sur 4" in text
    assert "CVE-2026-0001" in text


def test_an_image_built_by_a_pipeline_has_its_card_in_the_pipelines_thread(harbor_world: World) -> None:
    sha = harbor_world.states["gitlab"].pipelines_of("forge/projects/alpha/api")[-1].sha
    scanned(harbor_world, "api", sha[:8])  # CI_COMMIT_SHORT_SHA
    posts = channel_posts(harbor_world, "equipe-alpha")
    card = next(p for p in reversed(posts) if f"alpha/api:{sha[:8]}" in json.dumps(p))
    build = next(p for p in posts if "pipeline #" in json.dumps(p))
    assert card["root_id"] and card["root_id"] == (build["root_id"] or build["id"])


def test_a_failed_scan_is_one_line_and_a_push_posts_nothing(harbor_world: World) -> None:
    before = len(channel_posts(harbor_world, "equipe-alpha"))
    harbor(harbor_world).push_image("alpha", "api", "push-only")
    harbor(harbor_world).wait_deliveries()
    harbor_world.wait_idle()
    assert len(channel_posts(harbor_world, "equipe-alpha")) == before
    scanned(harbor_world, "api", "broken", failed=True)
    added = channel_posts(harbor_world, "equipe-alpha")[before:]
    (message,) = [p["message"] for p in added]
    # The image as people pull it: the registry host, the project, the tag and the digest.
    assert re.fullmatch(
        r"⚠️ Harbor n'a pas pu scanner l'image [\w.:-]+/alpha/api:broken@sha256:[0-9a-f]{12} : "
        r"relancez le scan depuis Harbor\.",
        message,
    ), message


def foreign_full_name() -> dict[str, Any]:
    body = event()
    body["event_data"]["repository"]["repo_full_name"] = "beta/api"
    return body


@pytest.mark.parametrize(
    ("authorization", "body", "status", "field"),
    [
        ("Bearer not-the-secret", event(), 401, None),
        ("", event(), 401, None),
        ("beta", event(), 403, None),  # beta's own secret, for an image of alpha's Harbor project
        ("alpha", event("beta"), 403, None),
        ("alpha", foreign_full_name(), 403, None),
        ("alpha", b"{not json", 400, ""),
        ("alpha", {**event(), "type": 7}, 400, "type"),
        (
            "alpha",
            {**event(), "event_data": {"resources": [], "repository": {"name": "a", "namespace": "alpha"}}},
            400,
            "event_data.resources",
        ),
    ],
)
def test_a_harbor_webhook_is_refused_unless_its_secret_vouches_for_its_project(
    harbor_world: World, authorization: str, body: Any, status: int, field: str | None
) -> None:
    if authorization in ("alpha", "beta"):
        authorization = auth_header(harbor_world, authorization)
    stored = harbor_world.store().count("inbox", "source = 'harbor'")
    answer = post(harbor_world, body, authorization)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]
    if field is not None:
        assert answer.json()["field"] == field
    assert harbor_world.store().count("inbox", "source = 'harbor'") == stored  # nothing stored


def test_a_delivery_harbor_retries_is_one_card(harbor_world: World) -> None:
    scanned(harbor_world, "api", "retried")
    before = len(cards(harbor_world))
    sent = next(d for d in reversed(harbor(harbor_world).wait_deliveries()) if d.event_type == "SCANNING_COMPLETED")
    # The same bytes as Harbor's first POST (httpx's JSON, as the emulator's).
    again = httpx.post(f"{harbor_world.bot_url}/hooks/harbor", json=sent.payload, headers=sent.headers)
    assert again.status_code == 202 and again.json()["duplicate"] is True
    harbor_world.wait_idle()
    assert len(cards(harbor_world)) == before
