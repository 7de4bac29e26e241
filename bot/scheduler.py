"""Periodic jobs (polling fallbacks, drift watch, reminders, health), on APScheduler 3.x.

Features register their jobs with :func:`every` at import; the runtime starts them with the app.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

if TYPE_CHECKING:
    from bot.runtime import Bot

Job = Callable[["Bot"], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    id: str
    seconds: float
    job: Job


JOBS: dict[str, JobSpec] = {}


def every(seconds: float, job_id: str) -> Callable[[Job], Job]:
    """Run the decorated coroutine every ``seconds`` (the config may override per job id)."""

    def decorate(job: Job) -> Job:
        JOBS[job_id] = JobSpec(job_id, seconds, job)
        return job

    return decorate


class Scheduler:
    def __init__(self, intervals: dict[str, float] | None = None) -> None:
        self.intervals = intervals or {}
        self.scheduler = AsyncIOScheduler(job_defaults={"coalesce": True, "max_instances": 1})

    def start(self, bot: Bot) -> None:
        for spec in JOBS.values():
            seconds = self.intervals.get(spec.id, spec.seconds)
            if seconds <= 0:
                continue
            self.scheduler.add_job(spec.job, "interval", seconds=seconds, id=spec.id, args=[bot], replace_existing=True)
        self.scheduler.start()

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    @property
    def job_ids(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]
