"""The ArgoCD adapter against the Argo CD emulator on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from services.argocd import ArgoCD, SyncRefused, automated
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
    state.timings.cascade_delete_seconds = 0.02
    state.timings.refresh_seconds = 0.01
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


async def test_a_project_update_keeps_the_metadata_an_admin_set(argo: ArgoCD, state: State) -> None:
    await argo.ensure_project("alpha", REPOS, DESTS)
    with state.lock:
        metadata = state.projects["alpha"]["metadata"]
        metadata.update(labels={"team": "alpha"}, annotations={"owner": "ops"}, finalizers=["keep.example/x"])
    assert (await argo.ensure_project("alpha", [*REPOS, "https://other.example/*"], DESTS)).changed
    project = state.project("alpha")
    assert project is not None
    kept = {k: project["metadata"].get(k) for k in ("labels", "annotations", "finalizers")}
    assert kept == {"labels": {"team": "alpha"}, "annotations": {"owner": "ops"}, "finalizers": ["keep.example/x"]}


async def test_a_cascade_delete_is_waited_for_before_the_project_goes(argo: ArgoCD, state: State) -> None:
    await _app(argo)
    state.timings.cascade_delete_seconds = 0.2
    assert await argo.delete_application("alpha-dev-infra") is True
    with pytest.raises(ServiceError) as err:
        await argo.delete_project("alpha")  # the application is only marked for deletion
    assert err.value.failure is Failure.INVALID
    await argo.wait_deleted(["alpha-dev-infra"], timeout=5.0, interval=0.02)
    assert await argo.get_application("alpha-dev-infra") is None
    assert await argo.delete_project("alpha") is True


async def test_waiting_for_a_delete_gives_up_as_unavailable(argo: ArgoCD, state: State) -> None:
    await _app(argo)
    state.timings.cascade_delete_seconds = 5.0
    await argo.delete_application("alpha-dev-infra")
    with pytest.raises(ServiceError) as err:
        await argo.wait_deleted(["alpha-dev-infra"], timeout=0.1, interval=0.02)
    assert err.value.failure is Failure.UNAVAILABLE


async def test_a_refresh_has_its_own_longer_timeout(server: EmulatorServer, state: State) -> None:
    client = ArgoCD(server.url, "admin", PASSWORD, timeout=0.3, refresh_timeout=3.0)
    try:
        await _app(client)
        state.timings.refresh_seconds = 0.6
        app = await client.refresh("alpha-dev-infra")
        assert app["metadata"]["name"] == "alpha-dev-infra"
    finally:
        await client.close()


def _sync_window(state: State) -> str | None:
    with state.lock:
        windows = [{"kind": "deny", "schedule": "* * * * *", "duration": "1h", "applications": ["alpha-*"]}]
        state.projects["alpha"]["spec"]["syncWindows"] = windows
    return None


def _override(state: State) -> str | None:
    state.require_override_for_revision_sync = True
    return "a" * 40


def _auto_sync(state: State) -> str | None:
    with state.lock:
        state.apps["alpha-dev-infra"].data["spec"]["syncPolicy"] = {"automated": {}}
    return "a" * 40


def _running(state: State) -> str | None:
    state.timings.sync_seconds = 2.0
    return None


@pytest.mark.parametrize(
    ("arrange", "kind", "failure"),
    [
        (_sync_window, "sync_window", Failure.FORBIDDEN),
        (_override, "override", Failure.FORBIDDEN),
        (_auto_sync, "auto_sync", Failure.CONFLICT),
        (_running, "running", Failure.CONFLICT),
    ],
)
async def test_sync_refusals_are_told_apart(
    argo: ArgoCD, state: State, arrange: Callable[[State], str | None], kind: str, failure: Failure
) -> None:
    await _app(argo)
    revision = arrange(state)
    if kind == "running":
        await argo.sync("alpha-dev-infra")
    with pytest.raises(SyncRefused) as err:
        await argo.sync("alpha-dev-infra", revision=revision)
    assert (err.value.kind, err.value.failure) == (kind, failure)


async def test_automated_sync_an_admin_enabled_stays_on(argo: ArgoCD, state: State) -> None:
    await _app(argo)
    with state.lock:
        state.apps["alpha-dev-infra"].data["spec"]["syncPolicy"] = {"automated": {"prune": False}}
    await argo.ensure_application("alpha-dev-infra", "alpha", REPO_URL, "deploy", "HEAD", "alpha-dev")
    app = state.app("alpha-dev-infra")
    assert app is not None and app["spec"]["source"]["path"] == "deploy"
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": False}
    assert automated(app)
