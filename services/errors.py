"""One error type for every platform service, with what a user needs to hear.

Messages are built here from the service's name and the kind of failure, never from the
exception text of a client library, which can carry URLs with credentials or request bodies.
"""

from __future__ import annotations

from enum import Enum


class Failure(Enum):
    UNAVAILABLE = "unavailable"  # down, timeout, 5xx: retry later
    RATE_LIMITED = "rate_limited"
    UNAUTHORIZED = "unauthorized"  # the bot's own credentials are refused
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"

    @property
    def transient(self) -> bool:
        return self in (Failure.UNAVAILABLE, Failure.RATE_LIMITED)


class ServiceError(Exception):
    def __init__(
        self,
        service: str,
        failure: Failure,
        status: int | None = None,
        retry_after: float | None = None,
        detail: str = "",
    ) -> None:
        self.service = service
        self.failure = failure
        self.status = status
        self.retry_after = retry_after
        self.detail = detail  # safe, short, built by the adapter (e.g. "project already exists")
        super().__init__(f"{service}: {failure.value}" + (f" ({status})" if status else ""))

    @property
    def transient(self) -> bool:
        return self.failure.transient


def failure_for_status(status: int) -> Failure:
    if status == 429:
        return Failure.RATE_LIMITED
    if status == 401:
        return Failure.UNAUTHORIZED
    if status == 403:
        return Failure.FORBIDDEN
    if status == 404:
        return Failure.NOT_FOUND
    if status == 409:
        return Failure.CONFLICT
    if status >= 500:
        return Failure.UNAVAILABLE
    return Failure.INVALID
