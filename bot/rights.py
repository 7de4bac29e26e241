"""Who may do what: project roles and platform access, checked in one place.

Project roles follow the platform (platform-facts §1.5): owner ⊃ admin ⊃ devops ⊃ developer ⊃
readonly. Owner and admin manage members, tokens and deletion; devops also manages environments and
secrets; developer manages repositories; readonly lists. Platform admins (from the config) may do
everything.
"""

from __future__ import annotations

import unicodedata
from enum import Enum, IntEnum

from bot.i18n import Text


class Role(IntEnum):
    READONLY = 1
    DEVELOPER = 2
    DEVOPS = 3
    ADMIN = 4
    OWNER = 5

    @classmethod
    def parse(cls, value: str) -> Role:
        """A stored or API role label (``developer``): the English enum name."""
        return cls[value.upper()]

    @classmethod
    def from_typed(cls, value: str) -> Role | None:
        """The role a person typed, in French or English, accents, case and separators optional
        (``développeur``, ``Developpeur``, ``developer``, ``lecture-seule``); None if none matches."""
        return _TYPED_ROLES.get(_fold(value))

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = {
    Role.READONLY: Text("lecture seule", "read-only"),
    Role.DEVELOPER: Text("développeur", "developer"),
    Role.DEVOPS: Text("devops", "devops"),
    Role.ADMIN: Text("administrateur", "admin"),
    Role.OWNER: Text("propriétaire", "owner"),
}


def _fold(word: str) -> str:
    """``Lecture-Seule`` → ``lectureseule``: what is left once accents, case and separators go."""
    decomposed = unicodedata.normalize("NFKD", word.casefold())
    return "".join(ch for ch in decomposed if ch.isalnum())


_TYPED_ROLES = {_fold(name): role for role, text in ROLE_NAMES.items() for name in (role.label, text.fr, text.en)}

# GitLab access levels per role (platform-facts §1.5: admin → Maintainer, devops/developer →
# Developer, readonly → Reporter, owner → Owner).
GITLAB_ACCESS = {Role.OWNER: 50, Role.ADMIN: 40, Role.DEVOPS: 30, Role.DEVELOPER: 30, Role.READONLY: 20}


class Access(Enum):
    """Requirements that are not a project role."""

    ANYONE = "anyone"
    CREATOR = "creator"  # may create projects (config.platform.project_creators, empty = anyone)
    PLATFORM_ADMIN = "platform_admin"


Requirement = Role | Access


ACCESS_NAMES = {
    Access.ANYONE: Text("tout le monde", "anyone"),
    Access.CREATOR: Text("créateurs de projets", "project creators"),
    Access.PLATFORM_ADMIN: Text("administrateurs de la plateforme", "platform admins"),
}


def requirement_label(requirement: Requirement, lang: str) -> str:
    if isinstance(requirement, Role):
        return ROLE_NAMES[requirement](lang)
    return ACCESS_NAMES[requirement](lang)


def allows(
    requirement: Requirement,
    *,
    is_platform_admin: bool,
    is_creator: bool,
    role: Role | None,
) -> bool:
    """Whether a caller with these attributes meets ``requirement``.

    ``role`` is the caller's role in the project the command targets (None: not a member).
    """
    if is_platform_admin:
        return True
    if requirement is Access.ANYONE:
        return True
    if requirement is Access.CREATOR:
        return is_creator
    if requirement is Access.PLATFORM_ADMIN:
        return False
    return role is not None and role >= requirement
