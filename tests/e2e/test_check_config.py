"""``cpn-bot check-config``: the configuration validated, then every service reached, one line each."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.sandbox.world import World
from tests.support import platform as svc


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_valid_config_reaches_every_service(make_world: Callable[..., World], vault_options: dict[str, Any]) -> None:
    world = make_world(**vault_options)
    result = check(world.config_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": valid")
    for service in ("Mattermost", "GitLab", "Vault", "Quay", "Nexus", "SonarQube", "ArgoCD"):
        assert any(line.startswith("✔") and service in line for line in lines), service


def test_a_service_down_is_named_and_the_exit_code_says_so(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.states["vault"].faults.down = True
    result = check(world.config_path)
    assert result.returncode == 1
    assert any(line.startswith("✘") and "Vault" in line for line in result.stdout.splitlines())


def test_a_bad_config_is_refused_with_the_key_and_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(
        '[server]\npublic_url = "not a url"\n[security]\nsigning_key = "literal-secret-value"\n'
        '[mattermost]\nurl = "http://127.0.0.1:1"\nbot_token = "env:CPN_UNSET_FOR_TEST"\ncommand_tokens = []\n'
    )
    result = check(config)
    assert result.returncode == 2
    for key in ("server.public_url", "security.signing_key", "mattermost.bot_token", "mattermost.command_tokens"):
        assert key in result.stderr
    assert "literal-secret-value" not in result.stderr + result.stdout


def vault_line(result: subprocess.CompletedProcess[str]) -> str:
    return next(line for line in result.stdout.splitlines() if "Vault" in line)


def test_a_refused_vault_token_is_told_from_one_that_lacks_rights(
    make_world: Callable[..., World], vault_options: dict[str, Any]
) -> None:
    world = make_world(**vault_options)
    admin = svc.vault_client(world)
    # Only the built-in `default` policy: a live token that may do nothing the bot needs.
    weak = admin.auth.token.create(policies=["default"], ttl="1h")["auth"]["client_token"]
    world.secret_ref("vault", weak)  # the file the configuration points at
    lacking = check(world.config_path)
    assert lacking.returncode == 1
    line = vault_line(lacking)
    assert line.startswith("✘") and "token lacks rights" in line and "forge-dso/data/" in line, line
    assert weak not in lacking.stdout + lacking.stderr

    admin.auth.token.revoke(weak)
    refused = check(world.config_path)
    line = vault_line(refused)
    assert refused.returncode == 1 and line.startswith("✘") and "credentials refused" in line, line
