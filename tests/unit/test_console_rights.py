"""Permission bits as the console computes them (console-api.md §4.4), without HTTP."""

from __future__ import annotations

import pytest

from bot.console_access import Grant, admin_perms, project_perms
from bot.rights import ROLE_RULES, ConsoleRule, Role, console_rule
from services.console_models import AdminRole, Member, Person, Project
from services.console_models import Role as ProjectRole

# The system roles of a project created by a console ≥ 9.23 (§4.3), as its API returns them.
ADMIN, DEVOPS, DEV, READ = (
    ProjectRole("r-admin", "Administrateur", 2),
    ProjectRole("r-devops", "DevOps", 984),
    ProjectRole("r-dev", "Développeur", 784),
    ProjectRole("r-read", "Lecture seule", 768),
)


def project(members: dict[str, tuple[str, ...]], everyone: int = 896, **state: object) -> Project:
    return Project(
        id="p1",
        name="alpha",
        slug="alpha",
        description="",
        status=str(state.get("status", "created")),
        locked=bool(state.get("locked", False)),
        owner_id="owner",
        owner=None,
        everyone_perms=everyone,
        members=tuple(Member(uid, f"{uid}@x.fr", "", "", roles) for uid, roles in members.items()),
        roles=(ADMIN, DEVOPS, DEV, READ),
    )


@pytest.mark.parametrize(
    ("user", "roles", "expected"),
    [
        ("owner", (), 2),  # the owner has MANAGE only, through ownership
        ("stranger", None, 0),  # not a member: nothing, everyonePerms not applied
        ("newcomer", (), 896 | 1),  # a member without roles: everyonePerms | GUEST
        ("dev", ("r-dev",), 896 | 1 | 784),
        ("devops", ("r-devops", "r-read"), 896 | 1 | 984 | 768),
        ("ghost-role", ("r-gone",), 896 | 1),  # unknown role ids are ignored
    ],
)
def test_project_bits_per_section_4_4(user: str, roles: tuple[str, ...] | None, expected: int) -> None:
    members = {} if roles is None else {user: roles}
    assert project_perms(user, project(members)) == expected


def test_role_masks_are_read_not_assumed() -> None:
    # A project of a console ≤ 9.22: its Développeur role also had REPLAY_HOOKS and SEE_SECRETS.
    legacy_dev = ProjectRole("r-dev", "Développeur", 976)
    bits = project_perms("dev", project({"dev": ("r-dev",)}, everyone=0), roles=[legacy_dev])
    assert Grant(bits, 0).verdict(ConsoleRule.SEE_SECRETS) is None
    assert Grant(project_perms("dev", project({"dev": ("r-dev",)}, everyone=0)), 0).verdict(ConsoleRule.SEE_SECRETS)


EVERYONE = AdminRole("g", "Tout le monde", 25608, type="global")
PLATFORM_ADMIN = AdminRole("a", "Administrateur Plateforme", 3, "/admin", "system")


@pytest.mark.parametrize(
    ("role_ids", "expected"),
    [((), 25608), (("a",), 25608 | 3), (("unknown",), 25608)],
)
def test_admin_bits_are_the_persons_roles_and_every_global_one(role_ids: tuple[str, ...], expected: int) -> None:
    person = Person("u", "u@x.fr", admin_role_ids=role_ids)
    assert admin_perms(person, [EVERYONE, PLATFORM_ADMIN]) == expected


MEMBER, DEVOPS_BITS, OWNER_BITS = 896 | 1, 896 | 1 | 984, 2


@pytest.mark.parametrize(
    ("bits", "admin", "rule", "verdict"),
    [
        (OWNER_BITS, 0, ConsoleRule.MANAGE, None),
        (OWNER_BITS, 0, ConsoleRule.MANAGE_MEMBERS, None),  # MANAGE grants every rule
        (MEMBER, 0, ConsoleRule.ACCESS, None),
        (MEMBER, 0, ConsoleRule.REPLAY_HOOKS, None),  # everyonePerms has REPLAY_HOOKS
        (MEMBER, 0, ConsoleRule.MANAGE_REPOSITORIES, "forbidden"),
        (DEVOPS_BITS, 0, ConsoleRule.MANAGE_ENVIRONMENTS, None),
        (DEVOPS_BITS, 0, ConsoleRule.MANAGE_MEMBERS, "forbidden"),
        (0, 25608, ConsoleRule.ACCESS, "forbidden"),  # the global role is no membership
        (0, 25608, ConsoleRule.LIST_MEMBERS, None),  # …though List* pass for anyone (§4.4 note 2)
        (0, 25608 | 3, ConsoleRule.MANAGE, None),  # a platform admin: admin MANAGE
        (0, 25608 | 1, ConsoleRule.MANAGE_ENVIRONMENTS, "forbidden"),  # read-only platform role
    ],
)
def test_rules_from_the_bits(bits: int, admin: int, rule: ConsoleRule, verdict: str | None) -> None:
    assert Grant(bits, admin).verdict(rule) == verdict


@pytest.mark.parametrize("admin", [0, 25608 | 3])  # even a platform admin
@pytest.mark.parametrize(
    ("state", "rule", "verdict"),
    [
        ({"locked": True}, ConsoleRule.MANAGE_REPOSITORIES, "locked"),
        ({"locked": True}, ConsoleRule.ACCESS, None),  # reading a locked project is fine
        ({"status": "archived"}, ConsoleRule.MANAGE_ENVIRONMENTS, "archived"),
        ({"status": "archived"}, ConsoleRule.ACCESS, "archived"),  # GET answers 404
        ({"status": "failed"}, ConsoleRule.REPLAY_HOOKS, None),  # a failed project may be replayed
    ],
)
def test_writes_need_a_project_neither_archived_nor_locked(
    admin: int, state: dict[str, object], rule: ConsoleRule, verdict: str | None
) -> None:
    grant = Grant(OWNER_BITS, admin, str(state.get("status", "created")), bool(state.get("locked", False)))
    assert grant.verdict(rule) == verdict


def test_each_role_stands_for_a_console_rule_and_a_command_may_name_a_finer_one() -> None:
    assert set(ROLE_RULES) == set(Role)
    assert console_rule(Role.DEVOPS) is ConsoleRule.MANAGE_ENVIRONMENTS
    assert console_rule(Role.DEVOPS, ConsoleRule.SEE_SECRETS) is ConsoleRule.SEE_SECRETS
