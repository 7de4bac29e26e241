"""The real-server pattern itself: a missing binary skips with its reason, it never fails."""

from __future__ import annotations

import pytest

from tests.support.real_servers import binary_or_skip


def test_a_missing_binary_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(pytest.skip.Exception, match="no `bao` binary"):
        binary_or_skip("bao", None, "/nonexistent/bao")


def test_the_first_executable_candidate_wins() -> None:
    found = binary_or_skip("sh", "/nonexistent/sh", "/bin/sh")
    assert found == "/bin/sh"
