"""What every platform adapter shares: the result of an "ensure", and error mapping for httpx.

Adapters are thin typed layers over the real client libraries (python-gitlab, hvac, httpx). They
know nothing of chat. Every call has a timeout; every failure becomes a
:class:`~services.errors.ServiceError` naming the service, whose message carries no secret.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from services.errors import Failure, ServiceError, failure_for_status

T = TypeVar("T")


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), built once.

    Building one loads the whole CA bundle (about 25 ms of CPU here): a client made for one request
    (a response URL, a health probe, an emulator's webhook) passes this one as ``verify=`` instead.
    """
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class Ensured(Generic[T]):
    """The outcome of an idempotent "ensure" step.

    ``changed`` is False when the object was already as wanted (a replay reports only changes);
    ``what`` says in a few words what was done, without any secret ("created group forge/alpha").
    """

    value: T
    changed: bool
    what: str = ""


def unchanged(value: T) -> Ensured[T]:
    return Ensured(value, False, "")


class HttpService:
    """An httpx.AsyncClient bound to one service, mapping failures to ServiceError."""

    service = "service"

    def __init__(self, base_url: str, timeout: float = 10.0, **client_options: Any) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, **client_options)

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...] = (200, 201, 204),
        allow: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request; a status in ``allow`` is returned to the caller instead of raising."""
        try:
            response = await self.client.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServiceError(self.service, Failure.UNAVAILABLE, detail="timeout") from None
        except httpx.HTTPError:
            raise ServiceError(self.service, Failure.UNAVAILABLE, detail="unreachable") from None
        if response.status_code in ok or response.status_code in allow:
            return response
        retry = response.headers.get("Retry-After")
        raise ServiceError(
            self.service,
            failure_for_status(response.status_code),
            response.status_code,
            retry_after=float(retry) if retry and retry.isdigit() else None,
        )


async def in_thread(service: str, call: Callable[[], T], timeout: float) -> T:
    """Run a blocking client call (python-gitlab, hvac) without blocking the event loop."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(call), timeout)
    except TimeoutError:
        raise ServiceError(service, Failure.UNAVAILABLE, detail="timeout") from None
