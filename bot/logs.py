"""JSON log lines, with secrets redacted before anything is written.

Redaction works on two levels: every secret value the process knows (the config's resolved secrets
and any value registered at run time with :func:`register_secret`) is replaced wherever it appears,
and well-known token shapes (GitLab, Vault, bearer headers, ``password=…``) are masked by pattern.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

_known: set[str] = set()
_known_lock = threading.Lock()
_known_re: re.Pattern[str] | None = None

PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"glpat-[A-Za-z0-9_\-]{20,}"), "glpat-***"),
    (re.compile(r"gl(?:ptt|dt|rt|cbt|oas|soat|ft)-[A-Za-z0-9_\-]{16,}"), "gl***"),
    (re.compile(r"hv[sbr]\.[A-Za-z0-9_\-]{20,}"), "hvs.***"),
    (re.compile(r"(?i)\b(bearer|token|basic)\s+[A-Za-z0-9._~+/=\-]{12,}"), r"\1 ***"),
    (re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key)(\"?\s*[:=]\s*\"?)[^\s\"',;&]+"), r"\1\2***"),
    (re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1***:***@"),
    (re.compile(r"squ_[A-Za-z0-9]{20,}|sq[pa]_[A-Za-z0-9]{20,}"), "sq*_***"),
]


def register_secret(value: str) -> None:
    """Make ``value`` redacted from every log line and masked text from now on."""
    global _known_re
    if not value or len(value) < 6:
        return
    with _known_lock:
        if value in _known:
            return
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)
        _known_re = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """``text`` with every known secret and every token-shaped string masked."""
    known = _known_re
    if known is not None:
        text = known.sub("***", text)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in getattr(record, "fields", {}).items():
            entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


class _DropLibraryNoise(logging.Filter):
    """mattermostautodriver logs "authentication failed" for the OK reply that precedes ``hello``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "Websocket authentication failed"


logging.getLogger("mattermostautodriver.websocket").addFilter(_DropLibraryNoise())


def setup_logging(level: str = "INFO", json_format: bool = True, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Client libraries log request URLs and bodies at DEBUG; keep them quiet.
    for noisy in ("httpx", "httpcore", "apscheduler", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The driver logs every error answer it raises, and we handle (and log) each of them ourselves.
    for name in ("mattermostautodriver", "mattermostautodriver.websocket", "mattermostautodriver.api"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (rendered as JSON keys)."""
    logger.log(level, msg, extra={"fields": fields})
