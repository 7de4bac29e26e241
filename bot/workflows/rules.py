"""The platform's naming rules (platform-facts §1.3), in one place.

Command declarations use these as argument kinds, so a bad name is refused with the rule before
anything runs; workflows use them again as a last check.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from bot.spec import ArgError, Kind, named

PROJECT_NAME = named(r"[a-z0-9]+", 2, 20, "rules.project_name", "nom")
REPO_NAME_PATTERN = r"[a-z0-9][a-z0-9-]*[a-z0-9]"
RESERVED_REPOS = ("mirror", "infra-apps", "infra-observability")
ENV_NAME = named(r"[a-z0-9]+", 2, 11, "rules.env_name", "env")
SECRET_KEY = named(r"[A-Za-z_][A-Za-z0-9_.\-]*", 1, 64, "rules.secret_key", "CLÉ")
STAGES = ("dev", "staging", "integration", "prod")
DESCRIPTION_MAX = 280

_repo = named(REPO_NAME_PATTERN, 2, 20, "rules.repo_name", "dépôt")


def _repo_name(value: str) -> str:
    name = _repo.validate(value)
    if name in RESERVED_REPOS:
        raise ArgError("rules.repo_reserved", value=value, reserved=", ".join(RESERVED_REPOS))
    return name


REPO_NAME = Kind("dépôt", _repo_name)


def _repo_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or not parts.path.endswith(".git") or parts.username:
        raise ArgError("rules.repo_url", value=value)
    return value


REPO_URL = Kind("https://….git", _repo_url)


def host_check(host: str) -> str:
    """``"ok"``, ``"internal"`` or ``"unresolved"`` for the host of a repository URL.

    The mirror job clones the URL from inside the platform: a host resolving to a loopback,
    private, link-local or otherwise internal address would let anyone probe the platform's own
    network (SSRF), and so would a name that does not resolve now but could later.
    """
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return "unresolved"
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_loopback
            or address.is_private
            or address.is_link_local
            or address.is_reserved
            or address.is_multicast
            or address.is_unspecified
        ):
            return "internal"
    return "ok"


def without_scheme(url: str) -> str:
    """``https://github.com/org/repo.git`` → ``github.com/org/repo.git`` (what the mirror job expects)."""
    return url.split("://", 1)[-1]
