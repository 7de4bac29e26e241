"""User text and secrets: echoed inert, never leaked."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.interactive import Refused, Signer
from bot.logs import redact, register_secret
from bot.render.safe import code, escape, url
from tests.support.mattermost import assert_inert, live_mentions


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("@all @channel et @here", "`@all` `@channel` et `@here`"),
        ("[clique](https://evil.example/x)", "\\[clique\\]\\(`https://evil.example/x`\\)"),
        ("voir https://git.example/a_b.git, www.example.fr.", "voir `https://git.example/a_b.git`, `www.example.fr`."),
        ("a:@channel x_@here", "a:`@channel` x\\_`@here`"),
        ("**gras** ~town-square ~~barré~~", "\\*\\*gras\\*\\* `~town-square` \\~\\~barré\\~\\~"),
        ("alice@interieur.gouv.fr", "alice@interieur.gouv.fr"),
        # a typed backtick would open a code span on the server whatever escapes it, and shift the rest
        ("musl`@all` puis @channel", "muslʼ@allʼ puis `@channel`"),
    ],
)
def test_mentions_links_and_markdown_are_inert_and_copy_back_as_typed(typed: str, shown: str) -> None:
    """Mentions, channel names and addresses go into code spans, which Mattermost neither links nor reads
    mentions in; nothing invisible is inserted, so copying the text gives back what was typed."""
    assert escape(typed) == shown
    assert_inert(shown)
    assert not live_mentions(shown)


def test_a_url_is_shown_as_typed_in_a_code_span_that_neither_links_nor_mentions() -> None:
    shown = url("https://github.com/ministere/api.git")
    assert shown == "`https://github.com/ministere/api.git`"  # copy and paste gives the address back
    assert "\u2060" not in url("https://host/@channel/x")


def test_long_text_is_cut_and_code_spans_cannot_be_closed() -> None:
    assert len(escape("x" * 10_000)) <= 300
    assert code("a`b") == "`aʼb`"


def test_known_secrets_and_token_shapes_are_redacted() -> None:
    register_secret("very-secret-value-123")
    line = redact(
        "token very-secret-value-123 glpat-abcdefghijklmnopqrstu hvs.ABCDEFGHIJKLMNOPQRSTUVWXYZ "
        "password=hunter22 https://user:pass@host/x Authorization: Bearer abcdefghijklmnop"
    )
    for leaked in (
        "very-secret-value-123",
        "abcdefghijklmnopqrstu",
        "ABCDEFGHIJKLMNOP",
        "hunter22",
        "user:pass",
    ):
        assert leaked not in line


def test_signed_context_round_trip() -> None:
    signer = Signer(b"k" * 32, ttl=60)
    context = signer.sign("delete", {"project": "alpha"}, "user1")
    signed = signer.verify(context, "user1")
    assert signed.action == "delete" and signed.data == {"project": "alpha"}


def test_another_user_an_expired_or_a_forged_context_is_refused() -> None:
    signer = Signer(b"k" * 32, ttl=60)
    context = signer.sign("delete", {"project": "alpha"}, "user1")
    with pytest.raises(Refused) as caught:
        signer.verify(context, "user2")
    assert caught.value.key == "actions.not_yours"

    forged = dict(context, data={"project": "beta"})
    with pytest.raises(Refused) as caught:
        signer.verify(forged, "user1")
    assert caught.value.forged

    with pytest.raises(Refused) as caught:
        Signer(b"other-key" * 4).verify(context, "user1")
    assert caught.value.forged

    old = signer.sign("delete", {}, "user1", ttl=1)
    old["exp"] = int(time.time()) - 1
    old["sig"] = signer._mac([old["action"], old["data"], old["user"], old["exp"], old["nonce"]])
    with pytest.raises(Refused) as caught:
        signer.verify(old, "user1")
    assert caught.value.key == "actions.expired"

    for junk in (None, "x", {"action": "a"}, {"action": "a", "data": {}, "user": "u", "exp": "soon"}):
        with pytest.raises(Refused):
            signer.verify(junk, "user1")


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"x": value}
    return value


@pytest.mark.parametrize(
    "change",
    [
        {"exp": float("inf")},
        {"exp": True},
        {"exp": "4000000000"},
        {"exp": 10**400},
        {"sig": "é" * 64},
        {"sig": "\ud800" * 64},
        {"sig": None},
        {"nonce": "../x"},
        {"data": {"k": "\ud800"}},
        {"data": _deep(5000)},
        {"data": []},
        {"action": ["a"]},
        {"user": {"id": "user1"}},
    ],
    ids=lambda change: "-".join(f"{k}:{type(v).__name__}" for k, v in change.items()),
)
def test_verify_refuses_every_malformed_context_and_raises_nothing_else(change: dict[str, Any]) -> None:
    signer = Signer(b"k" * 32, ttl=60)
    context = signer.sign("delete", {"project": "alpha"}, "user1") | change
    with pytest.raises(Refused) as caught:
        signer.verify(context, "user1")
    assert caught.value.forged
