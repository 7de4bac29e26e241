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
    # GitLab's token prefixes (gitlabhq/gitlabhq:doc/security/tokens/index.md, "Token prefixes").
    (re.compile(r"glpat-[A-Za-z0-9_\-.]{20,}"), "glpat-***"),
    (re.compile(r"gl(?:ptt|dt|rt|rtr|cbt|oas|soat|ft|imt|agent|ffct|wt|dpt)-[A-Za-z0-9_\-.]{16,}"), "gl***"),
    # Vault/OpenBao service, batch and recovery tokens; OpenBao and old Vault also issue ``s.``
    # + 24 characters (openbao/openbao:vault/token_store.go, TokenPrefix and the legacy format).
    (re.compile(r"hv[sbr]\.[A-Za-z0-9_\-]{20,}"), "hvs.***"),
    (re.compile(r"\b[sbr]\.[A-Za-z0-9]{24,}"), "s.***"),
    (re.compile(r"\bcpn_[A-Za-z0-9_\-]{40,}"), "cpn_***"),  # the sync API's tokens (commands/token.py)
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
            entry.setdefault("error", _error_type(record))
            if _tracebacks_wanted(record):
                entry["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", {})
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        line = f"{record.levelname.lower():7} {record.name}: {record.getMessage()} {extra}".rstrip()
        if record.exc_info:
            line += f" error={_error_type(record)}"
            if _tracebacks_wanted(record):
                line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _error_type(record: logging.LogRecord) -> str:
    exc_type = record.exc_info[0] if record.exc_info else None
    return exc_type.__name__ if exc_type is not None else ""


def _tracebacks_wanted(record: logging.LogRecord) -> bool:
    """A traceback is for whoever debugs (level DEBUG): a client's input never puts one in the logs."""
    return record.levelno <= logging.DEBUG or logging.getLogger().isEnabledFor(logging.DEBUG)


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


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


def uvicorn_log_config() -> dict[str, Any]:
    """``uvicorn.run(log_config=…)``: uvicorn's loggers write through the root handler (JSON,
    redacted) instead of their own plain-text handlers (uvicorn/uvicorn:uvicorn/config.py
    LOGGING_CONFIG, applied with ``logging.config.dictConfig``)."""
    through_root = {"handlers": [], "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            name: dict(through_root) for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")
        },
    }


def log_uncaught_errors() -> None:
    """Uncaught exceptions (main thread, threads, ``__del__``, warnings) as JSON lines, not as
    tracebacks that Python would print on stderr."""
    errors = logging.getLogger("cpn.uncaught")

    def main_hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        errors.error("uncaught exception", exc_info=(exc_type, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            errors.error("uncaught exception in a thread", exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    def unraisable_hook(unraisable: Any) -> None:
        if unraisable.exc_value is not None:
            exc_info = (unraisable.exc_type, unraisable.exc_value, unraisable.exc_traceback)
            errors.warning("unraisable exception", exc_info=exc_info)

    sys.excepthook = main_hook
    threading.excepthook = thread_hook
    sys.unraisablehook = unraisable_hook
    logging.captureWarnings(True)


def log(logger: logging.Logger, level: int, msg: str, **fields: Any) -> None:
    """Log ``msg`` with structured ``fields`` (rendered as JSON keys)."""
    logger.log(level, msg, extra={"fields": fields})
