"""How each platform service is checked (platform-facts §1.8), for ``check-config`` and
``/cpn services``: OK, degraded, failing or unknown, with the latency.

Each probe reaches the service's own health route and, where the bot has credentials, one
authenticated call, so that a wrong token shows up before the first user command.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

import httpx

from bot.config import Config
from services.base import ssl_context
from services.console_errors import error_status, to_error
from services.vault_policy import missing_rights, probe_paths


class Health(Enum):
    OK = "ok"
    DEGRADED = "degraded"
    FAILING = "failing"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    service: str
    health: Health
    latency_ms: float
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.health is Health.OK

    def line(self) -> str:
        mark = {"ok": "✔", "degraded": "~", "failing": "✘", "unknown": "?"}[self.health.value]
        detail = f" — {self.detail}" if self.detail else ""
        return f"{mark} {self.service:<10} {self.health.value:<9} {self.latency_ms:7.1f} ms{detail}"


Probe = Callable[[httpx.AsyncClient], Awaitable[tuple[Health, str]]]


def _status(response: httpx.Response, what: str) -> tuple[Health, str]:
    if response.status_code == 200:
        return Health.OK, ""
    if response.status_code in (401, 403):
        return Health.FAILING, f"{what}: credentials refused ({response.status_code})"
    return Health.FAILING, f"{what}: HTTP {response.status_code}"


def mattermost_probe(url: str, token: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        ping = await client.get(f"{url}/api/v4/system/ping")
        if ping.status_code != 200:
            return _status(ping, "ping")
        return _status(
            await client.get(f"{url}/api/v4/users/me", headers={"Authorization": f"Bearer {token}"}),
            "bot token",
        )

    return probe


GITLAB_CORE = ("gitaly", "master", "db", "sessions")


def gitlab_probe(url: str, token: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        ready = await client.get(f"{url}/-/readiness", params={"all": "1"})
        body = ready.json() if ready.headers.get("content-type", "").startswith("application/json") else {}
        failing = sorted(
            name
            for name, results in (body.items() if isinstance(body, dict) else [])
            if name.endswith("_check")
            and isinstance(results, list)
            and any(isinstance(r, dict) and r.get("status") != "ok" for r in results)
        )
        if failing:
            # platform-facts §1.8: a core component down is a failure, any other one a degradation.
            core = [name for name in failing if name.removesuffix("_check") in GITLAB_CORE]
            return (Health.FAILING if core else Health.DEGRADED), "readiness: " + ", ".join(failing)
        if ready.status_code != 200:
            return Health.FAILING, f"readiness: HTTP {ready.status_code}"
        return _status(await client.get(f"{url}/api/v4/user", headers={"PRIVATE-TOKEN": token}), "token")

    return probe


def vault_probe(url: str, token: str, kv_mount: str = "forge-dso") -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        health = await client.get(f"{url}/v1/sys/health", params={"standbyok": "true"})
        if health.status_code == 503:
            sealed = health.headers.get("content-type", "").startswith("application/json") and bool(
                health.json().get("sealed")
            )
            return Health.FAILING, "sealed" if sealed else "sys/health: HTTP 503"
        if health.status_code not in (200, 429, 473):
            return Health.FAILING, f"sys/health: HTTP {health.status_code}"
        headers = {"X-Vault-Token": token}
        # Every live token may look itself up: a 403 here is the token refused, not missing rights.
        lookup = await client.get(f"{url}/v1/auth/token/lookup-self", headers=headers)
        if lookup.status_code != 200:
            return _status(lookup, "token")
        # Then what the bot will do, asked without doing it (sys/capabilities-self, default policy).
        asked = await client.post(
            f"{url}/v1/sys/capabilities-self", headers=headers, json={"paths": list(probe_paths(kv_mount))}
        )
        if asked.status_code != 200:
            return Health.FAILING, f"token lacks rights: sys/capabilities-self (HTTP {asked.status_code})"
        body = asked.json()
        missing = missing_rights(body.get("data") or body, kv_mount)
        if missing:
            where = "; ".join(f"{path} ({', '.join(caps)})" for path, caps in missing.items())
            return Health.FAILING, f"token lacks rights: {where}"
        return Health.OK, ""

    return probe


def sonarqube_probe(url: str, token: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        # The token as Basic login, empty password: the only form SonarQube 9.9 LTS reads (Bearer came
        # in 10.0) — SonarSource/sonarqube server/sonar-webserver-auth/.../BasicAuthentication.java.
        response = await client.get(f"{url}/api/system/health", auth=(token, ""))
        if response.status_code != 200:
            return _status(response, "api/system/health")
        health = response.json().get("health")
        if health == "GREEN":
            return Health.OK, ""
        return (Health.DEGRADED if health == "YELLOW" else Health.FAILING), f"health {health}"

    return probe


def nexus_probe(url: str, username: str, password: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        status = await client.get(f"{url}/service/rest/v1/status")
        if status.status_code != 200:
            return Health.FAILING, f"status: HTTP {status.status_code}"
        writable = await client.get(f"{url}/service/rest/v1/status/writable")
        if writable.status_code != 200:
            return Health.DEGRADED, "read-only"
        # source=default: the local realm only, so that a slow LDAP realm does not hold the probe.
        users = await client.get(
            f"{url}/service/rest/v1/security/users", params={"source": "default"}, auth=(username, password)
        )
        return _status(users, "credentials")

    return probe


def quay_probe(url: str, token: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        health = await client.get(f"{url}/health/instance")
        if health.status_code != 200:
            return Health.FAILING, f"health/instance: HTTP {health.status_code}"
        return _status(await client.get(f"{url}/api/v1/user/", headers={"Authorization": f"Bearer {token}"}), "token")

    return probe


# Harbor's components without which it neither serves images nor its API; the others (trivy,
# jobservice, portal, registryctl…) down leave it degraded.
HARBOR_CORE = ("core", "database", "redis", "registry")


def harbor_probe(url: str, username: str, password: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        # goharbor/harbor:src/server/v2.0/handler/health.go — always 200, the verdict is in the body.
        health = await client.get(f"{url}/api/v2.0/health")
        if health.status_code != 200:
            return Health.FAILING, f"health: HTTP {health.status_code}"
        components = health.json().get("components") or []
        down = sorted(str(c.get("name")) for c in components if c.get("status") != "healthy")
        if down:
            core = [name for name in down if name in HARBOR_CORE]
            return (Health.FAILING if core else Health.DEGRADED), "unhealthy: " + ", ".join(down)
        # swagger /users/current: who the credentials are (401 when refused).
        return _status(await client.get(f"{url}/api/v2.0/users/current", auth=(username, password)), "credentials")

    return probe


def argocd_probe(url: str, username: str, password: str) -> Probe:
    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        health = await client.get(f"{url}/healthz")
        if health.status_code != 200:
            return Health.FAILING, f"healthz: HTTP {health.status_code}"
        session = await client.post(f"{url}/api/v1/session", json={"username": username, "password": password})
        return _status(session, "credentials")

    return probe


def console_probe(url: str, token: str) -> Probe:
    """Version, the console's own view of its services, then the admin token (console-api.md §2.10).

    The token check lists projects with ``filter=all`` and a name no project can have: it needs
    admin ``MANAGE`` (403 otherwise, §2.1), costs nothing, and a refused token shows as 401.
    """

    async def probe(client: httpx.AsyncClient) -> tuple[Health, str]:
        version = await client.get(f"{url}/api/v1/version")
        if version.status_code != 200:
            return Health.FAILING, f"version: HTTP {version.status_code}"
        text = f"version {version.json().get('version', '?')}"
        checked = await client.get(
            f"{url}/api/v1/projects",
            params={"filter": "all", "name": "cpn-bot-check"},
            headers={"x-dso-token": token},
        )
        body = checked.json() if checked.content else None
        status = error_status(checked.status_code, body)  # the legacy server wraps a 401 in a 200
        if status is not None:
            reason = to_error(status, body).reason
            return Health.FAILING, f"{text}; admin token refused ({status} {reason})"
        health = await client.get(f"{url}/api/v1/health-services")
        entries = health.json() if health.status_code == 200 else []
        bad = sorted(
            f"{e.get('name')} {e.get('status')}" for e in entries if isinstance(e, dict) and e.get("status") != "OK"
        )
        if bad:
            return Health.DEGRADED, f"{text}; console sees: " + ", ".join(bad)
        return Health.OK, text

    return probe


def probes(config: Config) -> dict[str, Probe]:
    """The probe of every service the configuration names."""
    found: dict[str, Probe] = {
        "Mattermost": mattermost_probe(
            str(config.mattermost.url).rstrip("/"), config.mattermost.bot_token.get_secret_value()
        ),
    }
    if config.gitlab:
        found["GitLab"] = gitlab_probe(str(config.gitlab.url).rstrip("/"), config.gitlab.token.get_secret_value())
    if config.vault:
        found["Vault"] = vault_probe(
            str(config.vault.url).rstrip("/"), config.vault.token.get_secret_value(), config.vault.kv_mount
        )
    if config.quay:
        found["Quay"] = quay_probe(str(config.quay.url).rstrip("/"), config.quay.token.get_secret_value())
    if config.harbor:
        found["Harbor"] = harbor_probe(
            str(config.harbor.url).rstrip("/"), config.harbor.username, config.harbor.password.get_secret_value()
        )
    if config.nexus:
        found["Nexus"] = nexus_probe(
            str(config.nexus.url).rstrip("/"), config.nexus.username, config.nexus.password.get_secret_value()
        )
    if config.sonarqube:
        found["SonarQube"] = sonarqube_probe(
            str(config.sonarqube.url).rstrip("/"), config.sonarqube.token.get_secret_value()
        )
    if config.argocd:
        found["ArgoCD"] = argocd_probe(
            str(config.argocd.url).rstrip("/"),
            config.argocd.username,
            config.argocd.password.get_secret_value(),
        )
    if config.console:
        found["Console"] = console_probe(str(config.console.url).rstrip("/"), config.console.token.get_secret_value())
    return found


async def run_probe(name: str, probe: Probe, timeout: float = 5.0) -> Check:
    started = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=timeout, verify=ssl_context()) as client:
            health, detail = await probe(client)
    except httpx.TimeoutException:
        health, detail = Health.FAILING, f"no answer within {timeout:g} s"
    except httpx.HTTPError:
        health, detail = Health.FAILING, "unreachable"
    except Exception:  # an answer no probe expected: unknown, and the others still count
        health, detail = Health.UNKNOWN, "unexpected answer"
    return Check(name, health, (time.perf_counter() - started) * 1000, detail)


async def check_all(config: Config, timeout: float = 5.0) -> list[Check]:
    found = probes(config)
    return list(await asyncio.gather(*(run_probe(name, probe, timeout) for name, probe in found.items())))
