"""Fuzzing every route of the bot's HTTP server, authenticated and not (issue 12).

Hypothesis draws batches of requests per route family: slash commands, buttons and dialogs
(``mattermost``), the five webhooks (``webhooks``), the sync API, the probes and unknown routes
(``api``). Each batch is sent concurrently to the bot of one world. The rules, for every request:
no answer ≥ 500, no error logged as a crash or with a traceback; and after each family the worker
has failed no event it accepted (an event that passed the edge never fails for its shape) and
``/healthz`` answers 200. A family must also get a share of its requests accepted (2xx), so the
fuzz reaches the handlers and not only the doors.

``FUZZ_SCALE`` scales the request counts (1.0: 20 000 in all). The figures of each family (count,
statuses, time) are printed and written to ``fuzz-figures.txt`` in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bot import webhook_models as models
from bot.sandbox.world import World
from bot.workflows.naming import derive
from services.emulators.fixtures import fixtures_dir
from tests.support.mattermost import User
from tests.support.model_strategies import for_model
from tests.support.worlds import alpha_with_api

SCALE = float(os.environ.get("FUZZ_SCALE", "1.0"))
BATCH = 25
QUOTAS = {"mattermost": 7_500, "webhooks": 7_500, "api": 5_000}  # 20 000 requests at scale 1
# The sync API limits each project's rate, so most of its valid calls are answered 429 by the
# handler itself: its share of 2xx is small by design.
MIN_ACCEPTED = {"mattermost": 0.05, "webhooks": 0.05, "api": 0.005}
FIXTURES = fixtures_dir()


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Keys:
    """What the fuzz may authenticate with, read off the world once."""

    slash: str
    users: list[str]
    channels: list[str]
    team: str
    gitlab: str
    sonar: str
    argocd: str
    harbor: str
    api: str


class Crashes(logging.Handler):
    """Records that tell of a crash: a traceback, or the bot's own crash lines."""

    WORDS = ("unhandled error", "action crashed", "command crashed", "delivery crashed")

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.exc_info or any(word in message for word in self.WORDS):
            self.records.append(f"{record.name}: {message} {getattr(record, 'fields', '')}")


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- bodies -----------------------------------------------------------------------------------------

TEXT = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ("@all", "<!channel>", "\u202e", "é" * 300, "\x00", "../../system/ping", "'; DROP TABLE projects; --")
)
SCALARS = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
RAW_TRAPS = st.sampled_from(
    (
        b"",
        b"null",
        b"[]",
        b"{",
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        b'{"exp": 1e999}',
        b'{"x": "\\ud800"}',
        b"\xff\xfe\x00",
        b'{"a": 1, "a": 2}',
        b"9" * 5000,
    )
)


def dumps(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def mutated(base: Any) -> st.SearchStrategy[bytes]:
    """``base`` with one value somewhere replaced by anything JSON can hold."""

    @st.composite
    def draw(d: st.DrawFn) -> bytes:
        data = json.loads(json.dumps(base))
        node: Any = data
        for _ in range(d(st.integers(0, 4))):
            if isinstance(node, dict) and node:
                key = d(st.sampled_from(sorted(node)))
                if isinstance(node[key], (dict, list)) and node[key]:
                    node = node[key]
                    continue
                node[key] = d(JSON)
                break
            if isinstance(node, list) and node:
                index = d(st.integers(0, len(node) - 1))
                if isinstance(node[index], (dict, list)) and node[index]:
                    node = node[index]
                    continue
                node[index] = d(JSON)
                break
        return dumps(data)

    return draw()


def body_from(base: Any, model: st.SearchStrategy[dict[str, Any]] | None = None) -> st.SearchStrategy[bytes]:
    options = [mutated(base), JSON.map(dumps), RAW_TRAPS, st.binary(max_size=200), st.just(dumps(base))]
    if model is not None:
        options.append(model.map(dumps))
    return st.one_of(options)


# -- requests per family ----------------------------------------------------------------------------

READ_ONLY_TEXTS = (
    "help",
    "help project",
    "project list",
    "project show alpha",
    "repo list alpha",
    "env list alpha",
    "member list alpha",
    "status alpha",
    "scan alpha",
    "quality alpha",
    "whoami",
    "services",
    "ask comment ajouter un dépôt ?",
    "project show",
    "nope nope",
    "repo add",
    "deploy alpha",
)


def mattermost_requests(keys: Keys) -> st.SearchStrategy[Req]:
    @st.composite
    def slash(d: st.DrawFn) -> Req:
        form: dict[str, Any] = {
            "token": d(st.sampled_from((keys.slash, keys.slash, "nope", ""))),
            "team_id": d(st.sampled_from((keys.team, "x" * 26, "../users/me"))),
            "channel_id": d(st.sampled_from((*keys.channels, "not-an-id", "a" * 27))),
            "user_id": d(st.sampled_from((*keys.users, "../../system/ping", ""))),
            "command": d(st.sampled_from(("/cpn", "/cpn", "/other"))),
            "text": d(st.sampled_from(READ_ONLY_TEXTS) | TEXT),
            "trigger_id": d(st.text(max_size=20)),
        }
        for extra in d(st.lists(st.text(max_size=6), max_size=3)):
            form[extra] = d(TEXT)
        if d(st.integers(0, 20)) == 0:
            form.update({f"f{i}": "x" for i in range(d(st.integers(150, 400)))})
        body = urlencode(form).encode() if d(st.integers(0, 5)) else d(st.binary(max_size=200))
        # httpx refuses header values with a trailing space ("Token "): such headers are dropped instead.
        auth = d(st.sampled_from((f"Token {form['token']}", f"Token {keys.slash}", "", "Bearer x"))).strip()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if auth:
            headers["Authorization"] = auth
        return Req("POST", "/mattermost/command", headers, body)

    @st.composite
    def interactive(d: st.DrawFn) -> Req:
        path = d(st.sampled_from(("/mattermost/actions", "/mattermost/dialogs")))
        shaped = {
            "user_id": d(st.sampled_from((*keys.users, "x"))),
            "channel_id": d(st.sampled_from((*keys.channels, "../x"))),
            "post_id": d(st.text(max_size=30)),
            "callback_id": d(TEXT),
            "state": d(TEXT),
            "submission": d(JSON),
            "context": d(
                st.dictionaries(st.sampled_from(("action", "sig", "exp", "nonce", "args", "user")), JSON, max_size=6)
                | JSON
            ),
        }
        body = d(st.one_of(st.just(dumps(shaped)), JSON.map(dumps), RAW_TRAPS))
        return Req("POST", path, {"Content-Type": "application/json"}, body)

    return st.one_of(slash(), slash(), interactive())


def webhook_requests(keys: Keys) -> st.SearchStrategy[Req]:
    pipeline, job, push = (
        fixture("gitlab_pipeline_event.json"),
        fixture("gitlab_job_event.json"),
        fixture("gitlab_push_event.json"),
    )
    for event in (pipeline, job, push):
        event.setdefault("project", {})["path_with_namespace"] = "forge/projects/alpha/api"
    gitlab_bodies = {
        "Pipeline Hook": body_from(pipeline, for_model(models.PipelineHook)),
        "Job Hook": body_from(job, for_model(models.JobHook)),
        "Push Hook": body_from(push, for_model(models.PushHook)),
        "Merge Request Hook": body_from({}, for_model(models.MergeRequestHook)),
        "Tag Push Hook": body_from(push),
    }
    sonar_base = fixture("sonarqube_webhook.json")["error"]
    sonar_base["project"]["key"] = "alpha-api"
    trivy_base = fixture("trivy_fs_report.json")

    @st.composite
    def gitlab(d: st.DrawFn) -> Req:
        event = d(st.sampled_from(sorted(gitlab_bodies)))
        headers = {
            "Content-Type": "application/json",
            "X-Gitlab-Event": d(st.sampled_from((event, event, "System Hook", ""))),
            "X-Gitlab-Token": d(st.sampled_from((keys.gitlab, keys.gitlab, keys.gitlab, "nope"))),
            "Idempotency-Key": d(st.sampled_from((str(uuid.uuid4()), "x" * 300, ""))),
            "X-Gitlab-Event-UUID": str(uuid.uuid4()),
        }
        project = d(st.sampled_from(("alpha", "alpha", "beta", "", "%00")))
        return Req("POST", f"/hooks/gitlab?project={project}", headers, d(gitlab_bodies[event]))

    @st.composite
    def sonar(d: st.DrawFn) -> Req:
        body = d(body_from(sonar_base, for_model(models.SonarQubeHook)))
        secret = d(st.sampled_from((keys.sonar, keys.sonar, "nope")))
        headers = {
            "Content-Type": "application/json",
            "X-SonarQube-Project": d(st.sampled_from(("alpha-api", "alpha-api", "beta-api", ""))),
            "X-Sonar-Webhook-HMAC-SHA256": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
        }
        return Req("POST", "/hooks/sonarqube", headers, body)

    @st.composite
    def argocd(d: st.DrawFn) -> Req:
        base = {"app": "alpha-dev-api", "event": "on-deployed"}
        body = d(body_from(base, for_model(models.ArgoCDHook)))
        token = d(st.sampled_from((keys.argocd, keys.argocd, "nope")))
        return Req("POST", "/hooks/argocd", {"Content-Type": "application/json", "X-CPN-Token": token}, body)

    @st.composite
    def trivy(d: st.DrawFn) -> Req:
        body = d(body_from(trivy_base))
        token = d(st.sampled_from((keys.api, keys.api, "cpn_nope", "")))
        query = urlencode(
            {"project": d(st.sampled_from(("alpha", "beta", ""))), "repo": d(st.sampled_from(("api", "x")))}
        )
        return Req("POST", f"/hooks/trivy?{query}", {"Authorization": f"Bearer {token}".strip()}, body)

    @st.composite
    def harbor(d: st.DrawFn) -> Req:
        base = {
            "type": "SCANNING_COMPLETED",
            "occur_at": 1,
            "operator": "auto",
            "event_data": {
                "resources": [{"digest": "sha256:" + "a" * 64, "tag": "1.0", "resource_url": "h/alpha/api:1.0"}],
                "repository": {
                    "name": "api",
                    "namespace": "alpha",
                    "repo_full_name": "alpha/api",
                    "repo_type": "private",
                },
            },
        }
        body = d(body_from(base, for_model(models.HarborHook)))
        token = d(st.sampled_from((keys.harbor, keys.harbor, "nope")))
        return Req(
            "POST", "/hooks/harbor", {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}, body
        )

    return st.one_of(gitlab(), gitlab(), sonar(), argocd(), trivy(), harbor())


def api_requests(keys: Keys) -> st.SearchStrategy[Req]:
    @st.composite
    def sync(d: st.DrawFn) -> Req:
        project = d(st.sampled_from(("alpha", "alpha", "beta", "..", "%2e%2e", "a" * 300)))
        repo = d(st.sampled_from(("api", "api", "nope", "")))
        token = d(st.sampled_from((keys.api, keys.api, "cpn_" + "0" * 40, "")))
        body = d(
            st.one_of(
                st.just(dumps({"branch": "main"})),
                st.just(dumps({"all": True})),
                st.fixed_dictionaries({"branch": TEXT}).map(dumps),
                JSON.map(dumps),
                RAW_TRAPS,
            )
        )
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return Req("POST", f"/api/v1/projects/{project}/repositories/{repo}/sync", headers, body)

    @st.composite
    def anything(d: st.DrawFn) -> Req:
        method = d(st.sampled_from(("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD")))
        path = d(
            st.sampled_from(
                (
                    "/healthz",
                    "/readyz",
                    "/metrics",
                    "/hooks/gitlab",
                    "/hooks/nope",
                    "/mattermost/command",
                    "/api/v1/projects",
                    "/%00",
                    "/" + "a" * 3000,
                )
            )
            | st.text(st.characters(codec="ascii", categories=["L", "N"]), max_size=30).map(lambda s: "/" + s)
        )
        headers = {"Authorization": d(st.sampled_from((f"Bearer {keys.api}", "Bearer x", "Basic Og==")))}
        return Req(method, path, headers, d(st.binary(max_size=100)))

    return st.one_of(sync(), sync(), anything())


FAMILIES: dict[str, Callable[[Keys], st.SearchStrategy[Req]]] = {
    "mattermost": mattermost_requests,
    "webhooks": webhook_requests,
    "api": api_requests,
}


# -- the run ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def target() -> Iterator[tuple[World, Keys]]:
    with alpha_with_api() as world:
        shown = User(world, "bob").run("/cpn token create alpha")["text"]
        assert world.bot is not None
        keys = Keys(
            slash=world.slash_token,
            users=[u.id for u in world.users.values()],
            channels=list(world.channels.values()),
            team=world.team_id,
            gitlab=derive(world.webhook_secrets["gitlab"].encode(), "gitlab", "alpha"),
            sonar=derive(world.webhook_secrets["sonarqube"].encode(), "sonarqube", "alpha"),
            argocd=world.webhook_secrets["argocd"],
            harbor=world.bot.webhook_secret("harbor", "alpha"),
            api=next(line for line in shown.splitlines() if line.startswith("cpn_")),
        )
        yield world, keys


async def send_batch(client: httpx.AsyncClient, batch: list[Req]) -> list[tuple[Req, int]]:
    async def one(req: Req) -> tuple[Req, int]:
        answer = await client.request(req.method, req.path, headers=req.headers, content=req.body)
        return req, answer.status_code

    return list(await asyncio.gather(*(one(r) for r in batch)))


def failed_events(world: World) -> list[tuple[str, str]]:
    rows = world.store().db.execute("SELECT source, error FROM inbox_done WHERE status = 'failed'").fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


@pytest.mark.timeout(600)
# The bot's threads run while Hypothesis draws: websockets' keepalive pings draw their payload from the
# global random state (websockets/asyncio/connection.py), which Hypothesis reads as a strategy using it.
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_no_request_gets_a_5xx_or_a_traceback_and_the_bot_stays_healthy(
    target: tuple[World, Keys], family: str, tmp_path: Path
) -> None:
    world, keys = target
    batches = max(1, round(QUOTAS[family] * SCALE / BATCH))
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    crashes = Crashes()
    logging.getLogger().addHandler(crashes)
    loop = asyncio.new_event_loop()
    client = httpx.AsyncClient(base_url=world.bot_url, timeout=30, limits=httpx.Limits(max_connections=BATCH))
    started = time.monotonic()

    @settings(
        max_examples=batches,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the failures are listed as they come
        suppress_health_check=list(HealthCheck),
    )
    @given(batch=st.lists(FAMILIES[family](keys), min_size=BATCH, max_size=BATCH))
    def run(batch: list[Req]) -> None:
        for req, status in loop.run_until_complete(send_batch(client, batch)):
            statuses[status] += 1
            if status >= 500:
                errors.append(f"{status} {req.method} {req.path} {req.body[:120]!r}")

    try:
        run()
        world.wait_idle(60)
        health = httpx.get(f"{world.bot_url}/healthz", timeout=10).status_code
    finally:
        loop.run_until_complete(client.aclose())
        loop.close()
        logging.getLogger().removeHandler(crashes)
    elapsed = time.monotonic() - started
    total = sum(statuses.values())
    accepted = sum(n for status, n in statuses.items() if 200 <= status < 300)
    figures = f"fuzz {family}: {total} requests in {elapsed:.1f} s, statuses {dict(sorted(statuses.items()))}"
    print(figures)
    (tmp_path / "fuzz-figures.txt").write_text(figures + "\n")

    assert total == batches * BATCH
    assert not errors, f"{len(errors)} answers ≥ 500, e.g. {errors[:5]}"
    assert not crashes.records, f"crashes logged: {crashes.records[:5]}"
    assert not failed_events(world), f"events failed in the worker: {failed_events(world)[:5]}"
    assert health == 200
    assert accepted >= MIN_ACCEPTED[family] * total, f"too few requests reached a handler: {figures}"
