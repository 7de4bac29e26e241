"""Reading the emulated services' state with their real clients, as an operator would."""

from __future__ import annotations

from typing import Any

import gitlab
import httpx
import hvac

from bot.sandbox.world import World


def gitlab_client(world: World) -> gitlab.Gitlab:
    return gitlab.Gitlab(world.servers["gitlab"].url, private_token=world.service_tokens["gitlab"])


def vault_client(world: World) -> hvac.Client:
    return hvac.Client(url=world.vault_url, token=world.vault_admin_token)


def vault_secret(world: World, path: str, mount: str = "forge-dso") -> dict[str, Any] | None:
    try:
        read = vault_client(world).secrets.kv.v2.read_secret_version(
            path=path, mount_point=mount, raise_on_deleted_version=True
        )
    except hvac.exceptions.InvalidPath:
        return None
    data: dict[str, Any] = read["data"]["data"]
    return data


def quay(world: World) -> httpx.Client:
    return httpx.Client(
        base_url=world.servers["quay"].url, headers={"Authorization": f"Bearer {world.service_tokens['quay']}"}
    )


def nexus(world: World) -> httpx.Client:
    return httpx.Client(base_url=world.servers["nexus"].url, auth=("admin", world.service_tokens["nexus"]))


def sonar(world: World) -> httpx.Client:
    return httpx.Client(
        base_url=world.servers["sonarqube"].url,
        headers={"Authorization": f"Bearer {world.service_tokens['sonarqube']}"},
    )


def argocd(world: World) -> httpx.Client:
    base = world.servers["argocd"].url
    token = httpx.post(
        f"{base}/api/v1/session", json={"username": "admin", "password": world.service_tokens["argocd"]}
    ).json()["token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})


def press_ephemeral(world: World, username: str, label: str) -> dict[str, Any]:
    """Press the button ``label`` of the newest ephemeral post ``username`` received."""
    user = world.users[username]
    actions = world.states["mattermost"].ephemeral_actions(user.id)
    post_id, action_id, cookie, _ = next(a for a in reversed(actions) if a[3] == label)
    answer = httpx.post(
        f"{world.servers['mattermost'].url}/api/v4/posts/{post_id}/actions/{action_id}",
        json={"cookie": cookie},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def submit_dialog(world: World, username: str, submission: dict[str, str]) -> dict[str, Any]:
    """Fill and submit the newest dialog opened for ``username``."""
    user = world.users[username]
    opened = [d for d in world.states["mattermost"].dialogs_opened if d["user_id"] == user.id][-1]
    dialog = opened["dialog"]
    answer = httpx.post(
        f"{world.servers['mattermost'].url}/api/v4/actions/dialogs/submit",
        json={
            "url": opened["url"],
            "callback_id": dialog.get("callback_id", ""),
            "state": dialog.get("state", ""),
            "channel_id": world.channels["equipe-alpha"],
            "team_id": world.team_id,
            "submission": submission,
            "cancelled": False,
        },
        headers={"Authorization": f"Bearer {user.token}"},
    )
    answer.raise_for_status()
    return answer.json() if answer.content else {}
