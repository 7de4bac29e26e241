"""The ArgoCD adapter against the Argo CD emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from services.argocd import ArgoCD
from services.emulators.argocd import State, create_app
from services.emulators.base import EmulatorServer
from services.errors import Failure, ServiceError

PASSWORD = "argocd-admin-Pa55"
REPOS = ["https://gitlab.example/forge/projects/alpha/*"]
DESTS = [("https://kubernetes.default.svc", "alpha-*")]
REPO_URL = "https://gitlab.example/forge/projects/alpha/infra.git"


@pytest.fixture
def state() -> State:
    state = State(PASSWORD)
    state.timings.sync_seconds = 0.05
    state.timings.health_seconds = 0.05
    return state


@pytest.fixture
def server(state: State) -> Iterator[EmulatorServer]:
    with EmulatorServer(create_app(state), name="argocd") as server:
        yield server


@pytest.fixture
async def argo(server: EmulatorServer) -> AsyncIterator[ArgoCD]:
    client = ArgoCD(server.url, "admin", PASSWORD, timeout=5.0)
    yield client
    await client.close()


async def _app(argo: ArgoCD, name: str = "alpha-dev-infra") -> None:
    await argo.ensure_project("alpha", REPOS, DESTS)
    await argo.ensure_application(name, "alpha", REPO_URL, ".", "HEAD", "alpha-dev")


async def test_ensure_project_create_idempotent_update(argo: ArgoCD, state: State) -> None:
    created = await argo.ensure_project("alpha", REPOS, DESTS, "Projet alpha")
    assert created.changed and created.what == "created ArgoCD project alpha"
    project = state.project("alpha")
    assert project is not None
    assert project["spec"]["sourceRepos"] == REPOS
    assert project["spec"]["destinations"] == [{"server": DESTS[0][0], "namespace": "alpha-*"}]
    assert project["spec"]["description"] == "Projet alpha"
    assert not (await argo.ensure_project("alpha", REPOS, DESTS, "Projet alpha")).changed

    with state.lock:  # something an admin added is kept
        state.projects["alpha"]["spec"]["clusterResourceWhitelist"] = [{"group": "", "kind": "Namespace"}]
    repos = [*REPOS, "https://gitlab.example/forge/projects/alpha/*.git"]
    updated = await argo.ensure_project("alpha", repos, DESTS, "Projet alpha")
    assert updated.changed and "updated" in updated.what
    project = state.project("alpha")
    assert project is not None and project["spec"]["sourceRepos"] == repos
    assert project["spec"]["clusterResourceWhitelist"] == [{"group": "", "kind": "Namespace"}]


async def test_project_restricts_sources(argo: ArgoCD) -> None:
    await argo.ensure_project("alpha", REPOS, DESTS)
    with pytest.raises(ServiceError) as err:
        await argo.ensure_application(
            "alpha-dev-x",
            "alpha",
            "https://gitlab.example/forge/projects/beta/infra.git",
            ".",
            "HEAD",
            "alpha-dev",
        )
    assert err.value.failure is Failure.INVALID


async def test_ensure_application(argo: ArgoCD, state: State) -> None:
    await argo.ensure_project("alpha", REPOS, DESTS)
    created = await argo.ensure_application(
        "alpha-dev-infra", "alpha", REPO_URL, ".", "HEAD", "alpha-dev", value_files=["values-dev.yaml"]
    )
    assert created.changed and created.what == "created ArgoCD application alpha-dev-infra"
    app = state.app("alpha-dev-infra")
    assert app is not None
    assert app["spec"]["source"] == {
        "repoURL": REPO_URL,
        "path": ".",
        "targetRevision": "HEAD",
        "helm": {"valueFiles": ["values-dev.yaml"]},
    }
    assert app["spec"]["destination"] == {
        "server": "https://kubernetes.default.svc",
        "namespace": "alpha-dev",
    }
    assert "syncPolicy" not in app["spec"]
    again = await argo.ensure_application(
        "alpha-dev-infra", "alpha", REPO_URL, ".", "HEAD", "alpha-dev", value_files=["values-dev.yaml"]
    )
    assert not again.changed

    updated = await argo.ensure_application(
        "alpha-dev-infra", "alpha", REPO_URL, "deploy", "main", "alpha-dev", auto_sync=True
    )
    assert updated.changed and "updated" in updated.what
    app = state.app("alpha-dev-infra")
    assert app is not None
    assert app["spec"]["source"] == {"repoURL": REPO_URL, "path": "deploy", "targetRevision": "main"}
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert not (
        await argo.ensure_application(
            "alpha-dev-infra", "alpha", REPO_URL, "deploy", "main", "alpha-dev", auto_sync=True
        )
    ).changed


async def test_get_list_delete_application(argo: ArgoCD, state: State) -> None:
    assert await argo.get_application("ghost") is None
    await _app(argo)
    app = await argo.get_application("alpha-dev-infra")
    assert app is not None and app["metadata"]["name"] == "alpha-dev-infra"
    assert [a["metadata"]["name"] for a in await argo.list_applications("alpha")] == ["alpha-dev-infra"]
    assert await argo.list_applications("other") == []


async def test_delete_project_in_use_then_free(argo: ArgoCD, state: State) -> None:
    await _app(argo)
    with pytest.raises(ServiceError) as err:
        await argo.delete_project("alpha")
    assert err.value.failure is Failure.INVALID
    assert await argo.delete_application("alpha-dev-infra", cascade=False) is True
    assert state.deletions == [("alpha-dev-infra", False)]
    assert await argo.delete_application("alpha-dev-infra") is False
    assert await argo.delete_project("alpha") is True
    assert await argo.delete_project("alpha") is False


async def test_sync_refresh_rollback_terminate_tree(argo: ArgoCD, state: State) -> None:
    await _app(argo)
    assert await argo.resource_tree("alpha-dev-infra") == {}
    started = await argo.sync("alpha-dev-infra", prune=True)
    assert started["status"]["operationState"]["phase"] == "Running"
    assert started["operation"]["sync"]["prune"] is True
    with pytest.raises(ServiceError) as err:
        await argo.sync("alpha-dev-infra")  # another operation runs
    assert err.value.failure is Failure.CONFLICT
    state.wait_idle("alpha-dev-infra")
    assert await argo.terminate("alpha-dev-infra") is False

    revision = "a" * 40
    await argo.sync("alpha-dev-infra", revision=revision)
    state.wait_idle("alpha-dev-infra")
    app = await argo.refresh("alpha-dev-infra", hard=True)
    assert [h["id"] for h in app["status"]["history"]] == [0, 1]
    tree = await argo.resource_tree("alpha-dev-infra")
    assert {n["kind"] for n in tree["nodes"]} >= {"Deployment", "Pod"}

    rolled = await argo.rollback("alpha-dev-infra", 0)
    assert rolled["operation"]["sync"]["revision"] != revision
    assert await argo.terminate("alpha-dev-infra") is True
    state.wait_until("alpha-dev-infra", lambda a: "operation" not in a)

    with pytest.raises(ServiceError) as err:
        await argo.rollback("alpha-dev-infra", 42)
    assert err.value.failure is Failure.INVALID


async def test_actions_on_missing_application_are_not_found(argo: ArgoCD) -> None:
    for action in (
        argo.sync("ghost"),
        argo.refresh("ghost"),
        argo.terminate("ghost"),
        argo.resource_tree("ghost"),
    ):
        with pytest.raises(ServiceError) as err:
            await action
        assert err.value.failure is Failure.NOT_FOUND


async def test_session_renewed_once_after_401(argo: ArgoCD, state: State) -> None:
    await argo.ensure_project("alpha", REPOS, DESTS)
    old = argo._token
    assert old is not None
    state.revoke(old)  # e.g. argocd-server restarted with a new key, or the token expired
    assert await argo.get_application("ghost") is None
    assert argo._token not in (None, old)


async def test_bad_password_is_unauthorized(server: EmulatorServer) -> None:
    client = ArgoCD(server.url, "admin", "wrong-Password")
    with pytest.raises(ServiceError) as err:
        await client.list_applications("alpha")
    await client.close()
    assert err.value.failure is Failure.UNAUTHORIZED
    assert "wrong-Password" not in str(err.value) and "wrong-Password" not in err.value.detail


async def test_down_is_unavailable(argo: ArgoCD, state: State) -> None:
    state.faults.down = True
    with pytest.raises(ServiceError) as err:
        await argo.get_application("alpha-dev-infra")
    assert err.value.failure is Failure.UNAVAILABLE


async def test_ui_url(argo: ArgoCD, server: EmulatorServer) -> None:
    assert argo.ui_url("alpha-dev-infra") == f"{server.url}/applications/alpha-dev-infra"
