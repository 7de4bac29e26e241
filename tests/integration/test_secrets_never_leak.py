"""No secret value ever reaches a post, a log line, an audit row or the SQLite file.

The test provisions a project the way a team would (a private repository whose token is typed in
a dialog, an application secret, a sync API token), then collects every secret that now exists on
the platform — from Vault, GitLab, Quay, SonarQube, Nexus, and what the users typed — and looks for
each of them everywhere the bot writes.
"""

from __future__ import annotations

import io
import logging
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.logs import JsonFormatter
from bot.sandbox.world import Timings, World
from bot.store import Store
from tests.conftest import wait_for
from tests.support import platform as svc
from tests.support.mattermost import User, channel_posts

TYPED_TOKEN = "ghp_TypedInTheDialog0123456789abcdef"
TYPED_SECRET = "app-secret-typed-in-a-dialog-42"


def vault_values(world: World) -> set[str]:
    client = svc.vault_client(world)
    values: set[str] = set()

    def walk(mount: str, prefix: str) -> None:
        try:
            keys = client.secrets.kv.v2.list_secrets(path=prefix, mount_point=mount)["data"]["keys"]
        except Exception:
            return
        for key in keys:
            path = f"{prefix}{key}"
            if key.endswith("/"):
                walk(mount, path)
                continue
            data = client.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
            for name, value in data["data"]["data"].items():
                if any(word in name for word in ("TOKEN", "PASSWORD", "DOCKER_CONFIG", "value")):
                    values.add(str(value))

    walk("forge-dso", "")
    walk("alpha", "")
    return values


def every_secret(world: World, sync_token: str) -> set[str]:
    secrets = vault_values(world) | {TYPED_TOKEN, TYPED_SECRET, sync_token}
    secrets |= set(world.service_tokens.values()) | set(world.webhook_secrets.values()) | {world.vault_admin_token}
    secrets |= {u.token for u in world.users.values()} | {world.slash_token}
    assert world.bot_user is not None
    secrets.add(world.bot_user.token)
    assert world.bot is not None
    for service in ("gitlab", "sonarqube"):
        secrets.add(world.bot.webhook_secret(service, "alpha"))
    return {s for s in secrets if len(s) >= 8}


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


METRICS_TOKEN = "metrics-token-never-shown-0123456789abcdef"


def signing_key(world: World) -> str:
    return (world.root / "secrets" / "signing_key").read_text()


def exercise_the_hardened_paths(world: World, places: dict[str, str]) -> None:
    """Probes with and without the metrics token, ids that are not ids, and a GitLab event spooled
    while the inbox file is locked: their answers and the spool files join the places searched."""
    import uuid

    import httpx

    from bot.event_spool import spool_path
    from tests.integration.test_pipelines import as_repo, fixture, project_secret, send

    answers = []
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {METRICS_TOKEN}"}):
        answers += [httpx.get(f"{world.bot_url}{probe}", headers=headers) for probe in ("/metrics", "/readyz")]
    assert answers[-2].status_code == 200 and answers[0].status_code == 401
    form = {"user_id": "../../system/ping", "channel_id": world.channels["equipe-alpha"], "text": "whoami"}
    answers.append(
        httpx.post(
            f"{world.bot_url}/mattermost/command", data=form, headers={"Authorization": f"Token {world.slash_token}"}
        )
    )
    store = world.store()
    holder = sqlite3.connect(store.inbox_path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        payload = as_repo(fixture("gitlab_pipeline_event.json"), repo="deploy")
        payload["project"]["path_with_namespace"] = "forge/projects/alpha/deploy"
        answers.append(send(world, "Pipeline Hook", payload, token=project_secret(world), delivery=str(uuid.uuid4())))
        assert answers[-1].status_code == 202
        spooled = list(spool_path(store.inbox_path).iterdir())
        assert spooled  # the event did go through the spool
        places["spool files"] = "\n".join(f.read_text(errors="replace") for f in spooled)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    wait_for(lambda: not list(spool_path(store.inbox_path).iterdir()), timeout=10, what="the spool drained")
    world.wait_idle(30)
    places["error and probe bodies"] = "\n".join(f"{a.headers}\n{a.text}" for a in answers if "cpn_" not in a.text)


def test_no_secret_in_posts_logs_audit_or_database(  # type: ignore[no-untyped-def]
    make_world, captured_logs: io.StringIO, vault_options: dict[str, Any], tmp_path: Path, control: str
) -> None:
    metrics_file = tmp_path / "metrics_token"
    metrics_file.write_text(METRICS_TOKEN)
    metrics_file.chmod(0o600)
    world: World = make_world(
        **vault_options, control=control, config_overrides={"server": {"metrics_token": f"file:{metrics_file}"}}
    )
    bob = User(world, "bob")
    typed = {TYPED_TOKEN, TYPED_SECRET}
    if control == "console":
        # Bob links his console token (a password field): his writes then go out with it.
        console = world.states["console"]
        pat = console.add_pat(console.user_by_email(world.users["bob"].email), "chat")
        assert "fenêtre" in bob.run("/cpn connect")["text"]
        assert svc.submit_dialog(world, "bob", {"token": pat}) == {}
        typed.add(pat)
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha deploy --url https://gitlab.com/ministere/deploy.git --private --infra")
    svc.submit_dialog(world, "bob", {"username": "deployer", "token": TYPED_TOKEN})
    bob.run("/cpn env add alpha dev --stage dev")
    bob.run("/cpn secret set alpha API_KEY")
    svc.submit_dialog(world, "bob", {"value": TYPED_SECRET})
    shown = bob.run("/cpn token create alpha")["text"]
    sync_token = next(line for line in shown.splitlines() if line.startswith("cpn_"))
    bob.run("/cpn project replay alpha")
    bob.run("/cpn project show alpha")
    bob.run("/cpn secret list alpha")
    world.wait_idle(30)
    hardened: dict[str, str] = {}
    exercise_the_hardened_paths(world, hardened)

    secrets = every_secret(world, sync_token) | typed | {METRICS_TOKEN, signing_key(world)}
    assert TYPED_TOKEN in vault_values(world)  # the typed values did reach Vault
    assert len(secrets) > 15

    mm = world.states["mattermost"]
    assert world.bot_user is not None
    bot_id = world.bot_user.id
    places = {
        "channel posts": "\n".join(str(p) for c in world.channels.values() for p in mm.channel_posts(c)),
        # The sync API token is shown once, on purpose, to the person who created it, in the
        # command's ephemeral answer: that one answer is set aside and checked below.
        "ephemeral posts": "\n".join(str(e) for e in mm.ephemeral if sync_token not in str(e)),
        "dialogs": "\n".join(str(d) for d in mm.dialogs_opened),
        "logs": captured_logs.getvalue(),
    }
    db = world.store().db
    places["audit"] = "\n".join(str(r) for r in db.table("audit").rows)
    places["operations"] = "\n".join(str(r) for r in db.table("operations").rows)
    places["inbox"] = "\n".join(str(r) for r in world.store().inbox_db.execute("SELECT * FROM inbox"))
    places["outbox"] = "\n".join(str(r) for r in db.table("outbox").rows)
    places.update(hardened)
    # Before and after the bot stops (which flushes the WAL into the database file): every file,
    # WAL and SHM included.
    sqlite_files = sorted(p for p in world.root.iterdir() if p.is_file() and ".sqlite" in p.name)
    places["sqlite files, running"] = "\n".join(f.read_bytes().decode("latin-1") for f in sqlite_files)
    world.stop_bot()
    files = sorted(p for p in world.root.iterdir() if p.is_file() and ".sqlite" in p.name)
    assert {f.name for f in files} >= {"cpn-bot.sqlite", "cpn-bot.inbox.sqlite"}
    places["sqlite file"] = "\n".join(f.read_bytes().decode("latin-1") for f in files if f.exists())
    leaks = [(secret[:6] + "…", where) for secret in secrets for where, text in places.items() if secret in text]
    assert leaks == []
    shown_once = [e for e in mm.ephemeral if sync_token in str(e)]
    assert len(shown_once) == 1 and shown_once[0]["user_id"] == world.users["bob"].id
    assert bot_id  # the bot did post: the search ran over real content


def test_a_bot_killed_halfway_through_an_onboarding_finishes_it_after_restart(tmp_path: Path) -> None:
    world = World(tmp_path, timings=Timings.fast(), bot_in_process=False).start()
    try:
        command = world.serve_command()
        first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _healthy(world), timeout=20, what="the bot")
        world.states["argocd"].faults.latency = 30.0  # the onboarding hangs at its last step
        answer = User(world, "bob").run("/cpn project create alpha")
        assert "lancée" in answer["text"]
        gl = svc.gitlab_client(world)
        wait_for(lambda: _group_exists(gl), timeout=20, what="the GitLab step")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        world.states["argocd"].faults.latency = 0.0
        store = Store(world.root / "cpn-bot.sqlite")
        assert store.db.execute("SELECT status FROM projects WHERE name = 'alpha'").fetchone()[0] == "initializing"
        second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(
                lambda: store.db.execute("SELECT status FROM projects WHERE name = 'alpha'").fetchone()[0] == "created",
                timeout=30,
                what="the onboarding resumed",
            )
            wait_for(lambda: store.count("outbox", "status = 'pending'") == 0, timeout=10, what="the card")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(10)
        texts = [
            a.get("text", "")
            for p in channel_posts(world, "equipe-alpha")
            for a in (p.get("props") or {}).get("attachments") or []
        ]
        assert len(texts) == 1 and "Projet prêt" in texts[0]  # one card, edited in place across the crash
    finally:
        world.stop()


def _healthy(world: World) -> bool:
    import httpx

    try:
        return httpx.get(f"{world.bot_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _group_exists(gl) -> bool:  # type: ignore[no-untyped-def]
    import gitlab

    try:
        gl.groups.get("forge/projects/alpha")
        return True
    except gitlab.exceptions.GitlabGetError:
        return False


__all__ = ["sys"]
