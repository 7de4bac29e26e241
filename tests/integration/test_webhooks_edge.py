"""Webhooks at the edge: what the headers alone can refuse is refused before any body byte is read."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import httpx
import pytest

from bot.sandbox.world import World

# (path, headers): a request every source must refuse from its headers alone.
UNAUTHENTICATED = [
    ("/hooks/gitlab?project=alpha", "X-Gitlab-Token: wrong\r\n"),
    ("/hooks/gitlab", ""),
    ("/hooks/argocd", ""),
    ("/hooks/trivy", "Authorization: Bearer nope\r\n"),
    ("/hooks/sonarqube", "X-SonarQube-Project: nowhere\r\n"),
    ("/hooks/sonarqube?project=alpha", ""),  # a known project, but no signature header
]


@pytest.mark.parametrize(("path", "extra"), UNAUTHENTICATED)
def test_an_unauthenticated_webhook_is_refused_before_its_body_is_sent(world: World, path: str, extra: str) -> None:
    # The request announces a body it never sends: a server that reads the body before checking
    # the credentials would wait for it, and the socket's timeout would fail the test.
    url = urlsplit(world.bot_url)
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: bot\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1000000\r\n{extra}\r\n"
        )
        conn.sendall(head.encode())
        answer = conn.recv(4096).decode("latin-1")
    status = answer.split(" ", 2)[1]
    assert status == "401", answer


@pytest.mark.parametrize(("size", "status"), [(3_000_000, 202), (25 * 1024 * 1024 + 1, 413)])
def test_gitlab_bodies_are_accepted_up_to_gitlabs_own_limit(world: World, size: int, status: int) -> None:
    # gitlabhq/gitlabhq:app/services/web_hook_service.rb: REQUEST_BODY_SIZE_LIMIT = 25.megabytes.
    assert world.bot is not None
    master = world.bot.config.gitlab.webhook_secret if world.bot.config.gitlab else None
    assert master is not None
    pad = size - len(b'{"object_kind":"push","pad":""}')
    body = b'{"object_kind":"push","pad":"' + b"a" * pad + b'"}'
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": master.get_secret_value(),
    }
    answer = httpx.post(f"{world.bot_url}/hooks/gitlab", content=body, headers=headers, timeout=30)
    assert answer.status_code == status, answer.text[:200]
