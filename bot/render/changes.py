"""What a replay changed, in the reader's language.

The adapters describe each change they make in one short English sentence (``Ensured.what``, kept
English for the logs: "created file mirror.sh in project 12"); a card shows it translated. Those
sentences are a closed set: each has its pattern here and its words in the catalog (``[change]``).
``tests/unit/test_changes.py`` reads every sentence the adapters can write from their source and
checks that each one has a pattern, so a new one cannot reach a French card in English.
"""

from __future__ import annotations

import re

from bot.i18n import Translator
from bot.render.safe import escape

_NAME = r"(?P<name>\S+)"

#: (catalog key under ``[change]``, the adapter's sentence), the more specific first.
# fmt: off
PATTERNS: tuple[tuple[str, str], ...] = (
    # GitLab (services/gitlab.py, bot/workflows/onboarding.py)
    ("groups_created", r"created groups (?P<name>.+)"),
    ("group_created", rf"created group {_NAME}"),
    ("file_created", r"created file (?P<file>\S+) in project (?P<project>\S+)"),
    ("file_updated", r"updated file (?P<file>\S+) in project (?P<project>\S+)"),
    ("trigger_created", r"created pipeline trigger '(?P<name>[^']*)' in project (?P<project>\S+)"),
    ("token_created", r"created access token '(?P<name>[^']*)' of group (?P<group>\S+)"),
    ("token_replaced", r"replaced access token '(?P<name>[^']*)' of group (?P<group>\S+)"),
    ("mirror_trigger_rotated", r"rotated the mirror trigger token"),
    ("group_token_rotated", rf"rotated the group token {_NAME}"),
    ("scan_hook_created", rf"created scan webhook of project {_NAME}"),
    ("scan_hook_updated", rf"updated scan webhook of project {_NAME}"),
    ("group_hook_created", rf"created webhook of group {_NAME}"),
    ("project_hook_created", rf"created webhook of project {_NAME}"),
    ("group_hook_updated", rf"updated webhook of group {_NAME} \((?P<events>[^)]*)\)"),
    ("project_hook_updated", rf"updated webhook of project {_NAME} \((?P<events>[^)]*)\)"),
    ("project_hook_removed", rf"removed webhook of project {_NAME} \(the group has one\)"),
    ("group_member_added", r"added user (?P<user>\S+) to group (?P<group>\S+) \(level (?P<level>\S+)\)"),
    (
        "group_member_level",
        r"changed level of user (?P<user>\S+) in group (?P<group>\S+) \((?P<before>\S+) → (?P<after>\S+)\)",
    ),
    # SonarQube (services/sonarqube.py)
    ("sonar_user_created", rf"created SonarQube user {_NAME}"),
    ("sonar_project_created", rf"created SonarQube project {_NAME}"),
    ("sonar_project_private", rf"made SonarQube project {_NAME} private"),
    ("sonar_granted", r"granted (?P<rights>.+) on (?P<project>\S+) to (?P<user>\S+)"),
    ("sonar_hooks_deduplicated", r"removed duplicate webhooks (?P<name>\S+) of (?P<project>\S+)"),
    ("sonar_hook_created", r"created webhook (?P<name>\S+) of (?P<project>\S+)"),
    ("sonar_hook_replaced", r"replaced webhook (?P<name>\S+) of (?P<project>\S+)"),
    # ArgoCD (services/argocd.py)
    ("argocd_project_created", rf"created ArgoCD project {_NAME}"),
    ("argocd_project_updated", rf"updated ArgoCD project {_NAME}"),
    ("argocd_app_created", rf"created ArgoCD application {_NAME}"),
    ("argocd_app_updated", rf"updated ArgoCD application {_NAME}"),
    # Vault (services/vault.py)
    ("mount_created", rf"created KV v2 mount {_NAME}"),
    ("mount_described", rf"updated description of mount {_NAME}"),
    ("policy_created", rf"created policy {_NAME}"),
    ("policy_updated", rf"updated policy {_NAME}"),
    ("secret_created", rf"created secret {_NAME}"),
    ("secret_updated", rf"updated secret {_NAME} \((?P<keys>[^)]*)\)"),
    # Harbor and Quay (services/harbor.py, services/quay.py)
    ("organization_created", rf"created organization {_NAME}"),
    ("robot_created", rf"created robot {_NAME}"),
    ("robot_rights", rf"(?P<rights>push/pull|pull) rights for {_NAME}"),
    ("robot_secret", rf"new secret for robot {_NAME} \(none in Vault\)"),
    ("robot_default", rf"default permission (?P<role>\S+) for {_NAME}"),
    ("robot_existing", rf"(?P<role>\S+) on (?P<count>\d+) existing repositories for {_NAME}"),
    ("registry_member_role", r"(?P<user>\S+) is now (?P<role>\S+) of (?P<project>\S+)"),
    ("registry_member_added", r"added (?P<user>\S+) to (?P<project>\S+) as (?P<role>\S+)"),
    # Nexus (services/nexus.py)
    ("nexus_repository_created", rf"created (?P<format>\S+) repository {_NAME}"),
    ("nexus_repository_fixed", rf"fixed (?P<format>\S+) repository {_NAME}"),
    ("nexus_group_created", rf"created (?P<format>\S+) group {_NAME}"),
    ("nexus_group_fixed", rf"fixed (?P<format>\S+) group {_NAME}"),
    ("nexus_privilege_created", rf"created privilege {_NAME}"),
    ("nexus_role_created", rf"created role {_NAME}"),
    ("nexus_role_updated", rf"updated privileges of role {_NAME}"),
    ("nexus_user_created", rf"created user {_NAME}"),
    ("nexus_role_given", r"gave role (?P<role>\S+) to user (?P<user>\S+)"),
    ("nexus_password_reset", r"reset password of user (?P<user>\S+)"),
    # GitLab and Harbor projects, after every more specific "created … project"
    ("project_created", rf"created project {_NAME}"),
    ("project_updated", rf"updated project {_NAME} \((?P<fixes>[^)]*)\)"),
)
# fmt: on
_COMPILED = tuple((key, re.compile(pattern)) for key, pattern in PATTERNS)


def match(sentence: str) -> tuple[str, dict[str, str]] | None:
    """The catalog key and parameters of one adapter sentence, or None when it has no pattern."""
    for key, pattern in _COMPILED:
        found = pattern.fullmatch(sentence)
        if found:
            return key, found.groupdict()
    return None


def change_line(what: str, tr: Translator) -> str:
    """One change as the card shows it: each of its sentences (an adapter may join several with
    ``"; "``) translated, names escaped; a sentence without a pattern stays as it is, escaped."""
    shown = []
    for sentence in (s.strip() for s in what.split("; ")):
        if not sentence:
            continue
        found = match(sentence)
        if found is None:
            shown.append(escape(sentence, 200))
            continue
        key, params = found
        shown.append(tr(f"change.{key}", **{k: escape(v, 120) for k, v in params.items()}))
    return " ; ".join(shown) if tr.lang == "fr" else "; ".join(shown)
