"""The ``[console]`` section: documented in the example, secrets by reference, reasons translated."""

from __future__ import annotations

import re
import tomllib

import pytest

from bot.config import ConfigError, parse_config
from bot.i18n import catalog
from services.console_errors import REASONS
from tests.unit.test_config import ROOT, minimal


def _example_console_section() -> dict[str, object]:
    """The commented ``[console]`` block of config.example.toml, uncommented."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    block = text[text.index("# [console]") :]
    lines = [line.removeprefix("# ") for line in block.splitlines() if re.match(r"# (\[console\]|[a-z_]+ = )", line)]
    section: dict[str, object] = tomllib.loads("\n".join(lines))["console"]
    return section


def test_the_example_documents_every_console_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_TOKEN", "admin-token-value")
    monkeypatch.setenv("CPN_TEST_KEY", "k" * 32)
    section = _example_console_section()
    config = parse_config(minimal(console=section))
    assert config.console is not None
    assert set(section) == set(type(config.console).model_fields)
    assert config.console.token.get_secret_value() == "admin-token-value"
    assert "admin-token-value" not in repr(config.console)
    assert config.console.write_timeout_seconds > config.console.timeout_seconds


def test_a_literal_console_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPN_TEST_KEY", "k" * 32)
    with pytest.raises(ConfigError, match=r"console\.token"):
        parse_config(minimal(console={"url": "https://console.example", "token": "raw-token"}))


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_console_refusal_reason_has_a_message(lang: str) -> None:
    texts = catalog("fr" if lang == "fr" else "en")
    assert [r for r in REASONS if f"console_error.{r}" not in texts] == []


def test_console_control_needs_the_console_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPN_TEST_KEY", "k" * 32)
    with pytest.raises(ConfigError, match=r"\[console\] section is missing"):
        parse_config(minimal(platform={"control": "console"}))
    assert parse_config(minimal()).platform.control == "direct"
