"""The platform's naming rules (platform-facts §1.3), in one place.

Command declarations use these as argument kinds, so a bad name is refused with the rule before
anything runs; workflows use them again as a last check.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from bot.spec import ArgError, Kind, named


def _suggesting(kind: Kind, allowed: str, max_len: int) -> Kind:
    """``kind``, whose refusal also offers the nearest valid name (``EtatCivil`` → ``etatcivil``)."""

    def validate(value: str) -> Any:
        try:
            return kind.validate(value)
        except ArgError as refused:
            plain = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode().lower()
            if "-" in allowed:  # where a dash is allowed, it is what the separators meant (Mon_API → mon-api)
                plain = re.sub(r"[\s_.]+", "-", plain)
            guess = re.sub("-{2,}", "-", re.sub(f"[^{allowed}]", "", plain)).strip("-")[:max_len].strip("-")
            try:
                kind.validate(guess)
            except ArgError:
                raise refused from None
            raise ArgError(f"{refused.key}_suggest", **refused.params, suggestion=guess) from None

    return Kind(kind.placeholder, validate)


PROJECT_NAME = _suggesting(named(r"[a-z0-9]+", 2, 20, "rules.project_name", "name"), "a-z0-9", 20)
REPO_NAME_PATTERN = r"[a-z0-9][a-z0-9-]*[a-z0-9]"
RESERVED_REPOS = ("mirror", "infra-apps", "infra-observability")
ENV_NAME = _suggesting(named(r"[a-z0-9]+", 2, 11, "rules.env_name", "env"), "a-z0-9", 11)
SECRET_KEY = named(r"[A-Za-z_][A-Za-z0-9_.\-]*", 1, 64, "rules.secret_key", "key")
STAGES = ("dev", "staging", "integration", "prod")
DESCRIPTION_MAX = 280

_repo = named(REPO_NAME_PATTERN, 2, 20, "rules.repo_name", "repo")


def _repo_name(value: str) -> str:
    name = _repo.validate(value)
    if name in RESERVED_REPOS:
        raise ArgError("rules.repo_reserved", value=value, reserved=", ".join(RESERVED_REPOS))
    return name


REPO_NAME = _suggesting(Kind("repo", _repo_name), "a-z0-9-", 20)


# What an external repository URL may look like: it reaches Vault (GIT_INPUT_URL) and the mirror
# job's ``git clone https://${GIT_INPUT_URL}``, so nothing a shell or git would read twice.
_URL_SHAPE = re.compile(
    r"https://(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?"
    r"(?:/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)+\.git"
)


def _repo_url(value: str) -> str:
    scheme, _, rest = value.partition("://")
    authority, slash, path = rest.partition("/")
    # Any userinfo, even an empty user name before a token (``https://:ghp_…@host``): credentials
    # go through --private and its dialog, to Vault, never into the URL stored in SQLite. The
    # refusal does not echo them.
    if "@" in authority or urlsplit(value).username is not None:
        shown = f"{scheme}://…@{authority.rpartition('@')[2]}{slash}{path}"
        raise ArgError("rules.repo_url_credentials", value=shown)
    if _URL_SHAPE.fullmatch(value) is None:
        raise ArgError("rules.repo_url", value=value)
    return value


REPO_URL = Kind("https://….git", _repo_url)

# git check-ref-format --branch (git/git:Documentation/git-check-ref-format.adoc), then a
# conservative set on top: a branch reaches GIT_BRANCH_DEPLOY and the mirror job's shell.
_BRANCH_CHARS = re.compile(r"[A-Za-z0-9._/+-]{1,255}")
_BAD_REF = re.compile(r"\.\.|//|@\{|(?:^|/)\.|\.lock(?:/|$)|^[/-]|[/.]$")


def valid_branch(name: str) -> bool:
    return bool(_BRANCH_CHARS.fullmatch(name)) and not _BAD_REF.search(name) and name != "HEAD"


def _branch(value: str) -> str:
    if not valid_branch(value):
        raise ArgError("rules.branch", value=value)
    return value


BRANCH = Kind("branch", _branch)


def without_scheme(url: str) -> str:
    """``https://github.com/org/repo.git`` → ``github.com/org/repo.git`` (what the mirror job expects)."""
    return url.split("://", 1)[-1]
