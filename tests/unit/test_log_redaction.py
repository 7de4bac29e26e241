"""Log lines: every token shape the bot handles is masked, and a traceback appears only at DEBUG."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import JsonFormatter, redact, register_secret, setup_logging, uvicorn_log_config

TOKENS = [
    "s.AbCdEfGhIjKlMnOpQrStUvWx",  # an OpenBao/legacy Vault service token
    "hvs.CAESIAbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
    "hvb.AAAAAQJabcdefghijklmnopqrstuvwxyz0123456789",
    "glpat-abcdefghijklmnopqrst",
    "glpat-AbCdEfGhIjKlMnOpQrStUvWxYz.01.0w1a2b3c4",
    "gldt-abcdefghijklmnopqrst",
    "glrt-t1_abcdefghijklmnopqrst",
    "glcbt-abcdefghijklmnopqrst",
    "cpn_" + "A1b2C3d4E5f6" * 4,
]


@pytest.mark.parametrize("token", TOKENS)
def test_every_token_shape_is_masked(token: str) -> None:
    for line in (f"token in text {token} here", f'{{"x": "{token}"}}', f"Authorization: Bearer {token}"):
        assert token not in redact(line)
        assert token[-12:] not in redact(line)


def test_signing_key_and_metrics_token_values_are_masked_once_registered() -> None:
    for value in ("a-signing-key-of-32-bytes-or-more-0123456789", "metrics-token-value-42"):
        register_secret(value)
        assert value not in redact(f"leaked {value}!")


def test_words_and_metric_names_are_left_alone() -> None:
    text = "cpn_events_processed_total status=done s.alpha projects.alpha glob-configuration-file"
    assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def _crash(logger: logging.Logger) -> None:
    found: dict[str, int] = {}
    try:
        found["missing"]
    except KeyError:
        logger.exception("unhandled error")


def test_an_error_logs_its_type_as_json_and_its_traceback_only_at_debug(captured: io.StringIO) -> None:
    setup_logging("INFO", json_format=True, stream=captured)
    _crash(logging.getLogger("cpn.test"))
    entry = json.loads(captured.getvalue())
    assert entry["error"] == "KeyError" and "exc" not in entry and "Traceback" not in captured.getvalue()
    captured.truncate(0)
    captured.seek(0)
    setup_logging("DEBUG", json_format=True, stream=captured)
    _crash(logging.getLogger("cpn.test"))
    assert "Traceback" in json.loads(captured.getvalue())["exc"]


def test_uvicorns_loggers_write_through_the_json_root_handler(captured: io.StringIO) -> None:
    import logging.config

    setup_logging("INFO", json_format=True, stream=captured)
    logging.config.dictConfig(uvicorn_log_config())
    logging.getLogger("uvicorn.error").warning("Invalid HTTP request received.")
    assert json.loads(captured.getvalue())["logger"] == "uvicorn.error"
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
