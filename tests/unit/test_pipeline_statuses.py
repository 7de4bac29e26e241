"""GitLab's pipeline statuses as the bot ranks them (gitlabhq app/models/concerns/ci/has_status.rb)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from bot.render.pipelines import ICONS
from bot.store import Store
from bot.workflows.pipelines import FINAL, JobState, PipelineBook, PipelineState, newer

# has_status.rb AVAILABLE_STATUSES (GitLab 17+, with canceling and waiting_for_callback).
GITLAB_STATUSES = (
    "created",
    "waiting_for_resource",
    "preparing",
    "waiting_for_callback",
    "pending",
    "running",
    "canceling",
    "success",
    "failed",
    "canceled",
    "skipped",
    "manual",
    "scheduled",
)


def test_only_gitlabs_completed_statuses_are_final() -> None:
    assert frozenset({"success", "failed", "canceled", "skipped"}) == FINAL


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("running", "manual"),  # a manual stage after the build blocks the pipeline
        ("manual", "running"),  # someone played the manual job
        ("manual", "success"),
        ("running", "canceling"),
        ("canceling", "canceled"),
        ("pending", "waiting_for_callback"),
        ("waiting_for_callback", "failed"),
    ],
)
def test_a_later_status_replaces_an_earlier_one(old: str, new: str) -> None:
    assert newer(old, "", new, "")


@pytest.mark.parametrize(("old", "new"), [("canceling", "running"), ("canceled", "canceling"), ("success", "manual")])
def test_a_late_event_does_not_move_a_pipeline_back(old: str, new: str) -> None:
    assert not newer(old, "", new, "")


def test_a_manual_pipeline_is_still_polled(tmp_path: Path) -> None:
    book = PipelineBook(Store(tmp_path / "bot.sqlite"))
    for pipeline_id, status in enumerate(("manual", "canceling", "success"), start=1):
        book.save(
            PipelineState(
                key=f"7:{pipeline_id}",
                project_id=1,
                repo="api",
                gitlab_project_id=7,
                pipeline_id=pipeline_id,
                status=status,
            )
        )
    assert sorted(s.status for s in book.unfinished(older_than=-10)) == ["canceling", "manual"]


def test_a_stage_shows_the_status_gitlab_would() -> None:
    state = PipelineState(key="7:1", project_id=1, repo="api", gitlab_project_id=7, pipeline_id=1)
    state.jobs = {
        1: JobState(1, "build", "build", "success"),
        2: JobState(2, "deploy", "deploy", "manual"),
        3: JobState(3, "stop", "cleanup", "canceling"),
        4: JobState(4, "optional", "build", "manual"),
    }
    assert [state.stage_status(s) for s in ("build", "deploy", "cleanup")] == ["success", "manual", "canceling"]


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_gitlab_status_has_an_icon_and_a_label(lang: str) -> None:
    catalog = tomllib.loads((Path("bot/locales") / f"{lang}.toml").read_text())
    for status in GITLAB_STATUSES:
        assert status in ICONS
        assert status in catalog["pipeline"]["status"]
        assert status in catalog["pipeline"]["sync_status"]
