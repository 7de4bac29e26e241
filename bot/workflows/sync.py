"""Repository synchronisation: the project's ``mirror`` pipeline (platform-facts §2.3).

The trigger token lives in Vault (``GITLAB``), written there by the provisioning; the bot reads
it when it needs it and keeps it nowhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.logs import register_secret
from bot.model import Project
from bot.netpolicy import AddressRefused, Verdict
from bot.spec import ArgError
from bot.workflows.naming import Names
from bot.workflows.rules import REPO_URL, valid_branch
from services.errors import Failure, ServiceError
from services.gitlab import Pipeline

if TYPE_CHECKING:
    from bot.runtime import Bot


async def check_source(bot: Bot, project: Project, repo: str, branch: str | None) -> None:
    """The branch and the source's address of ``repo``, checked before every sync (both controls).

    The address is judged now, not only when the repository was added: a host name can be
    re-pointed at an internal address since (DNS rebinding). :class:`AddressRefused` if it fails.
    """
    if branch is not None and not valid_branch(branch):
        raise ValueError("not a valid branch name")  # commands and the sync API refuse it before
    known = bot.projects.repository(project.id, repo)
    if known is not None and known.external_url:
        try:
            REPO_URL.validate(known.external_url)  # a row stored before the rules were this strict
        except ArgError:
            raise AddressRefused(Verdict("bad_url", known.name)) from None
        verdict = await bot.address_policy.check_url(known.external_url)
        if not verdict.ok:
            raise AddressRefused(verdict)


async def trigger(
    bot: Bot, project: Project, repo: str, branch: str | None = None, all_branches: bool = False
) -> Pipeline:
    """Run the mirror for ``repo`` with the trigger token of Vault, after :func:`check_source`."""
    await check_source(bot, project, repo, branch)
    gitlab, vault = bot.platform.gitlab, bot.platform.vault
    if gitlab is None or vault is None:
        raise ServiceError("GitLab", Failure.UNAVAILABLE, detail="not configured")
    names = Names(bot.config.platform.root_group, project.slug)
    stored = await vault.read(names.vault("GITLAB")) or {}
    project_id, token = stored.get("GIT_MIRROR_PROJECT_ID"), stored.get("GIT_MIRROR_TOKEN")
    if not project_id or not token:
        raise ServiceError("Vault", Failure.NOT_FOUND, detail="mirror trigger not provisioned")
    register_secret(token)  # never in a log line, nor in a job's trace the bot relays
    variables = {
        "PROJECT_NAME": repo,
        "GIT_BRANCH_DEPLOY": "" if all_branches else (branch or "main"),
        "SYNC_ALL": "true" if all_branches else "false",
    }
    return await gitlab.trigger_pipeline(int(project_id), token, "main", variables)
