"""The configuration refuses what it cannot use, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_config, parse_config
from bot.workflows.platform import Platform

ROOT = Path(__file__).resolve().parents[2]


def minimal(**overrides: object) -> dict[str, object]:
    data: dict[str, object] = {
        "server": {"public_url": "http://127.0.0.1:8080"},
        "security": {"signing_key": "env:CPN_TEST_KEY"},
        "mattermost": {
            "url": "http://127.0.0.1:8065",
            "bot_token": "env:CPN_TEST_KEY",
            "command_tokens": ["env:CPN_TEST_KEY"],
        },
    }
    data.update(overrides)
    return data


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPN_TEST_KEY", "s3cr3t-value-for-tests")


def test_a_minimal_config_is_valid_and_secrets_are_hidden() -> None:
    config = parse_config(minimal())
    assert config.language == "fr"
    assert config.mattermost.bot_token.get_secret_value() == "s3cr3t-value-for-tests"
    assert "s3cr3t" not in repr(config)


def test_a_literal_secret_is_refused_with_its_key() -> None:
    data = minimal()
    data["security"] = {"signing_key": "hunter2"}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert "security.signing_key" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_missing_env_variable_is_named() -> None:
    data = minimal()
    data["security"] = {"signing_key": "env:CPN_NOT_SET_ANYWHERE"}
    with pytest.raises(ConfigError, match="CPN_NOT_SET_ANYWHERE is not set"):
        parse_config(data)


def test_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    data = minimal()
    data["security"] = {"signing_key": f"file:{secret}"}
    assert parse_config(data).security.signing_key.get_secret_value() == "from-a-file"


def test_missing_and_unknown_keys_are_named() -> None:
    data = minimal()
    del data["mattermost"]
    data["mattermots"] = {}
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    message = str(caught.value)
    assert "mattermost: missing (required)" in message
    assert "mattermots: unknown key" in message


def test_bad_values_are_named() -> None:
    with pytest.raises(ConfigError, match=r"server.port"):
        parse_config(minimal(server={"public_url": "http://x", "port": 70000}))
    with pytest.raises(ConfigError, match=r"language"):
        parse_config(minimal(language="de"))


def test_not_toml(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("language = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_the_example_documents_a_valid_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "CPN_SIGNING_KEY",
        "MM_BOT_TOKEN",
        "MM_SLASH_TOKEN",
        "GITLAB_TOKEN",
        "VAULT_TOKEN",
        "QUAY_TOKEN",
        "NEXUS_PASSWORD",
        "SONAR_TOKEN",
        "ARGOCD_PASSWORD",
    ):
        monkeypatch.setenv(name, f"value-of-{name}")
    config = load_config(ROOT / "config.example.toml")
    assert config.gitlab is not None and config.argocd is not None


@pytest.mark.parametrize(("given", "used"), [({}, "default"), ({"blob_store": "fast-ssd"}, "fast-ssd")])
def test_the_nexus_blob_store_reaches_the_adapter(given: dict[str, str], used: str) -> None:
    nexus = {"url": "http://127.0.0.1:8081", "password": "env:CPN_TEST_KEY", **given}
    platform = Platform.from_config(parse_config(minimal(nexus=nexus)))
    assert platform.nexus is not None and platform.nexus.blob_store == used
