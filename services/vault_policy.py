"""What the bot's Vault (OpenBao) token must be allowed to do, as an ACL policy and as probes.

One table, :func:`bot_rights`, gives both the policy an operator installs (:func:`bot_policy`,
printed in the README) and the concrete paths ``check-config`` asks ``sys/capabilities-self``
about (:func:`probe_paths`), so the two cannot drift apart. The test suite creates a token with
exactly this policy on a real OpenBao and runs the adapter and a whole onboarding with it.
"""

from __future__ import annotations

from collections.abc import Mapping

# A name no project can take (project slugs have no "-" at the start), used in probe paths.
PROBE = "-cpn-bot-probe"


def bot_rights(kv_mount: str = "forge-dso") -> dict[str, tuple[str, ...]]:
    """Path pattern → capabilities, for every call ``services.vault.Vault`` makes."""
    kv = kv_mount.strip("/")
    return {
        # The platform's KV v2 mount: the secrets of every project under <root>/<slug>/.
        f"{kv}/data/*": ("create", "read", "update"),
        f"{kv}/metadata/*": ("read", "list", "delete"),
        # Each project's own KV v2 mount, named after its slug (platform-facts §3.2).
        "+/data/*": ("create", "read", "update"),
        "+/metadata/*": ("read", "list", "delete"),
        # Creating, describing and removing those mounts.
        "sys/mounts": ("read",),
        "sys/mounts/*": ("create", "read", "update", "delete"),
        # The app--<slug>--admin and tech--<slug>--ro policies.
        "sys/policies/acl/*": ("create", "read", "update", "delete"),
        # Telling a refused token from missing rights (also in the built-in `default` policy).
        "auth/token/lookup-self": ("read",),
    }


def bot_policy(kv_mount: str = "forge-dso") -> str:
    """The rights as an HCL ACL policy (``bao policy write cpn-bot -``)."""
    blocks = []
    for path, capabilities in bot_rights(kv_mount).items():
        quoted = ", ".join(f'"{c}"' for c in capabilities)
        blocks.append(f'path "{path}" {{\n  capabilities = [{quoted}]\n}}\n')
    return "\n".join(blocks)


def probe_paths(kv_mount: str = "forge-dso") -> Mapping[str, tuple[str, ...]]:
    """One concrete path per rule (wildcards replaced by :data:`PROBE`) → the capabilities it needs."""
    return {path.replace("+", PROBE).replace("*", PROBE): caps for path, caps in bot_rights(kv_mount).items()}


def missing_rights(granted: Mapping[str, object], kv_mount: str = "forge-dso") -> dict[str, list[str]]:
    """From a ``sys/capabilities-self`` answer: probe path → the capabilities it lacks (``root`` has all)."""
    missing: dict[str, list[str]] = {}
    for path, needed in probe_paths(kv_mount).items():
        raw = granted.get(path)
        have = {str(c) for c in raw} if isinstance(raw, list) else set()
        if "root" in have:
            continue
        lacking = [c for c in needed if c not in have]
        if lacking:
            missing[path] = lacking
    return missing
