"""Single-use contexts: a nonce is used once, with the effects of its press, and forgotten after expiry."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.interactive import AlreadyUsed, Signed
from bot.nonces import PRUNE_MARGIN, Nonces, PressOnce
from bot.store import Store

ALICE = "a" * 26


def signed(nonce: str = "0123456789abcdef", expires: float | None = None) -> Signed:
    return Signed("deploy.confirm", {}, ALICE, int(expires or time.time() + 300), True, nonce, "Confirmer")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "bot.sqlite")


def audit_rows(store: Store) -> int:
    return store.count("audit")


def test_a_nonce_is_claimed_once_and_the_second_claim_says_who_used_it(store: Store) -> None:
    nonces = Nonces(store)
    nonces.claim(signed(), ALICE)
    with pytest.raises(AlreadyUsed) as caught:
        nonces.claim(signed(), "b" * 26)
    assert caught.value.use is not None
    assert (caught.value.use.user_id, caught.value.use.label) == (ALICE, "Confirmer")


def test_the_effects_and_the_use_commit_together_or_not_at_all(store: Store) -> None:
    nonces = Nonces(store)
    with pytest.raises(RuntimeError), PressOnce(nonces, signed(), ALICE).effect():
        store.audit(ALICE, "alice", "deploy", "alpha/prod", "ok")
        raise RuntimeError("the effect failed")
    assert nonces.use_of(signed().nonce) is None and audit_rows(store) == 0  # nothing used, nothing done
    with PressOnce(nonces, signed(), ALICE).effect():
        store.audit(ALICE, "alice", "deploy", "alpha/prod", "ok")
    with pytest.raises(AlreadyUsed), PressOnce(nonces, signed(), ALICE).effect():
        store.audit(ALICE, "alice", "deploy", "alpha/prod", "ok")
    assert audit_rows(store) == 1  # the second press's effect was rolled back with its claim


def test_uses_are_forgotten_once_their_context_has_expired(store: Store) -> None:
    nonces = Nonces(store)
    nonces.claim(signed("1" * 16, expires=time.time() - PRUNE_MARGIN - 5), ALICE)
    nonces.claim(signed("2" * 16), ALICE)  # any claim prunes the expired ones
    assert nonces.use_of("1" * 16) is None and nonces.use_of("2" * 16) is not None
