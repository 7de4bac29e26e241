"""``platform.registry`` chooses the registry the bot drives: Quay or Harbor, behind one interface."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, parse_config
from bot.workflows.platform import Platform
from services.harbor import Harbor
from services.quay import Quay
from services.registry import ContainerRegistry
from tests.unit.test_config import minimal

QUAY = {"url": "http://127.0.0.1:8090", "token": "env:CPN_TEST_KEY"}
HARBOR = {"url": "http://127.0.0.1:8091", "username": "cpn-bot", "password": "env:CPN_TEST_KEY"}


@pytest.fixture(autouse=True)
def _secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CPN_TEST_KEY", "s3cr3t-value-for-tests")


@pytest.mark.parametrize(("registry", "kind"), [("quay", Quay), ("harbor", Harbor)])
async def test_platform_registry_chooses_the_adapter(registry: str, kind: type) -> None:
    config = parse_config(minimal(platform={"registry": registry}, quay=QUAY, harbor=HARBOR))
    platform = Platform.from_config(config)
    try:
        assert isinstance(platform.registry, kind) and isinstance(platform.registry, ContainerRegistry)
    finally:
        await platform.close()


async def test_quay_stays_the_default_registry() -> None:
    platform = Platform.from_config(parse_config(minimal(quay=QUAY, harbor=HARBOR)))
    try:
        assert isinstance(platform.registry, Quay)
    finally:
        await platform.close()


async def test_the_harbor_section_reaches_the_adapter() -> None:
    harbor = {**HARBOR, "host": "registry.cpn.example", "robot_prefix": "bot-"}
    platform = Platform.from_config(parse_config(minimal(platform={"registry": "harbor"}, harbor=harbor)))
    try:
        assert isinstance(platform.registry, Harbor)
        assert platform.registry.host == "registry.cpn.example" and platform.registry.robot_prefix == "bot-"
        assert "s3cr3t" not in repr(vars(platform.registry))
    finally:
        await platform.close()


def test_harbor_as_registry_without_a_harbor_section_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[harbor\] section is missing"):
        parse_config(minimal(platform={"registry": "harbor"}, quay=QUAY))


@pytest.mark.parametrize("password", ["Harbor12345", ""])
def test_the_harbor_password_is_never_written_literally(password: str) -> None:
    with pytest.raises(ConfigError, match=r"harbor\.password"):
        parse_config(minimal(harbor={**HARBOR, "password": password}))


def test_an_unknown_registry_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"platform\.registry"):
        parse_config(minimal(platform={"registry": "docker-hub"}))
