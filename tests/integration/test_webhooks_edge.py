"""Webhooks at the edge: what the headers alone can refuse is refused before any body byte is read."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

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
