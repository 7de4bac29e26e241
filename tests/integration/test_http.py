"""The bot's HTTP surface: probes, metrics, limits, and answers to bad requests."""

from __future__ import annotations

from urllib.parse import urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.sandbox.world import World
from tests.conftest import wait_for
from tests.support.mattermost import User


def form(world: World, text: str) -> dict[str, str]:
    return {
        "channel_id": world.channels["equipe-alpha"],
        "channel_name": "equipe-alpha",
        "command": "/cpn",
        "response_url": f"{world.servers['mattermost'].url}/hooks/commands/none",
        "team_domain": "cloud-pi-native",
        "team_id": world.team_id,
        "text": text,
        "token": world.slash_token,
        "trigger_id": "x",
        "user_id": world.users["bob"].id,
        "user_name": "bob",
    }


def test_health_readiness_and_request_ids(world: World) -> None:
    health = httpx.get(f"{world.bot_url}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["x-request-id"]
    assert httpx.get(f"{world.bot_url}/healthz", headers={"X-Request-Id": "abc123"}).headers["x-request-id"] == "abc123"
    assert httpx.get(f"{world.bot_url}/readyz").json() == {
        "ready": True,
        "checks": {"store": "ok", "mattermost": "ok"},
    }
    world.states["mattermost"].faults.down = True
    not_ready = httpx.get(f"{world.bot_url}/readyz")
    assert not_ready.status_code == 503 and not_ready.json()["checks"]["mattermost"] == "unreachable"


def test_metrics_in_prometheus_text_format(world: World) -> None:
    User(world, "bob").run("/cpn help")
    text = httpx.get(f"{world.bot_url}/metrics").text
    assert 'cpn_commands_total{command="help"} 1' in text
    assert 'cpn_http_requests_total{route="/mattermost/command",status="200"} 1' in text
    for queue in ("outbox", "inbox", "operations"):
        assert f'cpn_queue_depth{{queue="{queue}"}}' in text
    assert "# TYPE cpn_http_request_seconds histogram" in text


def test_a_body_over_the_limit_is_refused_with_413(world: World) -> None:
    big = b"text=" + b"a" * 2_000_000
    headers = {
        "Authorization": f"Token {world.slash_token}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    assert httpx.post(f"{world.bot_url}/mattermost/command", content=big, headers=headers).status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"a" * 65_536

    chunked = httpx.post(f"{world.bot_url}/mattermost/command", content=chunks(), headers=headers)
    assert chunked.status_code == 413


def test_webhooks_and_the_sync_api_without_credentials_are_refused_with_a_reason(world: World) -> None:
    for source in ("gitlab", "sonarqube", "argocd", "trivy"):
        answer = httpx.post(f"{world.bot_url}/hooks/{source}", json={})
        assert answer.status_code == 401
        assert answer.json()["error"]
    sync = httpx.post(f"{world.bot_url}/api/v1/projects/alpha/repositories/api/sync", json={"branch": "main"})
    assert sync.status_code == 401 and "bearer" in sync.json()["error"]
    assert httpx.get(f"{world.bot_url}/nowhere").status_code == 404


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    text=st.one_of(
        st.text(max_size=200),
        st.text(alphabet=st.sampled_from(list("\"'«»“”—-= \\\x00\t\n@~`*[]()abc")), max_size=60),
        st.builds(
            lambda w, t: f"{w} {t}",
            st.sampled_from(["help", "whoami", "help help", "project create"]),
            st.text(max_size=80),
        ),
        st.just("x" * 10_000),
        st.builds(lambda s, n: "help " + s * n, st.text(min_size=1, max_size=20), st.integers(400, 600)),
        st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=10), st.integers(1_000, 2_500)),
    )
)
def test_no_command_text_ever_gives_a_5xx(fuzz_world: World, text: str) -> None:
    body = urlencode(form(fuzz_world, text)).encode()
    answer = fuzz_client(fuzz_world).post(
        "/mattermost/command",
        content=body,
        headers={
            "Authorization": f"Token {fuzz_world.slash_token}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["response_type"] in ("ephemeral", "in_channel")


_clients: dict[int, httpx.Client] = {}


def fuzz_client(world: World) -> httpx.Client:
    if id(world) not in _clients:
        _clients[id(world)] = httpx.Client(base_url=world.bot_url, timeout=10)
    return _clients[id(world)]


def test_direct_messages_and_mentions_get_an_answer_in_their_thread(world: World) -> None:
    mm = world.states["mattermost"]
    alice = User(world, "alice")
    question = alice.say("@cpn-bot comment synchroniser mon dépôt ?")
    reply = wait_for(lambda: [p for p in mm.thread(question["id"]) if p["id"] != question["id"]], what="a reply")
    assert reply[0]["root_id"] == question["id"]
    assert reply[0]["props"]["attachments"][0]["title"].startswith("📘")
    assert not any(p["root_id"] == question["id"] for p in mm.channel_posts(world.channels["equipe-beta"]))
    alice.say("un message qui ne concerne pas le bot")
    world.wait_idle()
    assert len([p for p in mm.channel_posts(world.channels["equipe-alpha"]) if p["user_id"] == world.bot_user.id]) == 1  # type: ignore[union-attr]


def test_webhooks_take_only_posts_and_refuse_an_unsigned_one_without_a_traceback(world: World) -> None:
    for path in ("/hooks/gitlab", "/hooks/argocd", "/hooks/sonarqube", "/hooks/trivy", "/hooks/harbor"):
        assert httpx.get(f"{world.bot_url}{path}").status_code == 405, path
        refused = httpx.post(f"{world.bot_url}{path}", content=b"{}", headers={"Content-Type": "application/json"})
        assert refused.status_code == 401, path
        assert refused.json().get("error") and "Traceback" not in refused.text
