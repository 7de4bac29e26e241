"""Buttons and dialogs: only the right user, only before expiry, only with the bot's signature."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from bot.sandbox.world import World
from tests.conftest import wait_for
from tests.support import commands as test_commands
from tests.support.mattermost import User, channel_posts


def card(world: World) -> dict[str, Any]:
    post: dict[str, Any] = wait_for(
        lambda: next((p for p in channel_posts(world, "equipe-alpha") if p["message"] == "carte"), None),
        what="the card",
    )
    return post


def action_id(post: dict[str, Any]) -> str:
    return str(post["props"]["attachments"][0]["actions"][0]["id"])


def test_the_bound_user_presses_and_the_card_is_updated(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    bob = User(world, "bob")
    bob.run("/cpn test button")
    post = card(world)
    bob.press(post["id"], action_id(post))
    assert test_commands.received["pressed_by"] == bob.me.id
    mm = world.states["mattermost"]
    # The card says who chose what and when, then what was done; its button is gone.
    chosen, done = mm.posts[post["id"]]["message"].splitlines()
    assert re.fullmatch(r"✅ « Confirmer » choisi par @bob à \d\d:\d\d", chosen) and done == "✅ confirmé"
    assert "attachments" not in mm.posts[post["id"]]["props"]
    assert any(p["message"] == "fait" for p in mm.ephemeral_for(bob.me.id))


def test_another_user_is_refused(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    User(world, "bob").run("/cpn test button")
    post = card(world)
    carol = User(world, "carol")
    carol.press(post["id"], action_id(post))
    mm = world.states["mattermost"]
    assert "pressed_by" not in test_commands.received
    assert mm.posts[post["id"]]["message"] == "carte"
    assert any("réservé" in p["message"] for p in mm.ephemeral_for(carol.me.id))


def test_an_expired_button_is_refused(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry(), config_overrides={"security": {"action_ttl_seconds": 10}})
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test button")
    post = card(world)
    context = world.states["mattermost"].posts[post["id"]]["props"]["attachments"][0]["actions"][0]["integration"][
        "context"
    ]
    assert world.bot is not None
    # The same context, re-signed by the bot's key but with its expiry in the past.
    expired = dict(context, exp=context["exp"] - 3600)
    expired["sig"] = world.bot.signer._mac(
        world.bot.signer._payload(
            expired["action"], expired["data"], expired["user"], expired["exp"], expired["nonce"], False, "Confirmer"
        )
    )
    answer = httpx.post(
        f"{world.bot_url}/mattermost/actions",
        json={"user_id": bob.me.id, "post_id": post["id"], "context": expired},
    )
    assert answer.status_code == 200
    assert "expiré" in answer.json()["ephemeral_text"]
    assert "pressed_by" not in test_commands.received


def test_a_forged_context_is_refused(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test button")
    post = card(world)
    context = world.states["mattermost"].posts[post["id"]]["props"]["attachments"][0]["actions"][0]["integration"][
        "context"
    ]
    for forged in (
        dict(context, user=world.users["carol"].id),
        dict(context, data={"n": 2}),
        dict(context, exp=context["exp"] + 3600),
        {"action": "test.pressed", "data": {}, "user": bob.me.id},
        "not a dict",
    ):
        answer = httpx.post(f"{world.bot_url}/mattermost/actions", json={"user_id": bob.me.id, "context": forged})
        assert answer.status_code == 401
    assert httpx.post(f"{world.bot_url}/mattermost/actions", content=b"{not json").status_code == 400
    assert "pressed_by" not in test_commands.received


def test_a_dialog_opens_with_the_trigger_id_and_its_submission_comes_back(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test dialog")
    mm = world.states["mattermost"]
    opened = wait_for(lambda: mm.dialogs_opened, what="a dialog")[-1]
    assert opened["user_id"] == bob.me.id
    dialog = opened["dialog"]
    password = next(e for e in dialog["elements"] if e["name"] == "value")
    assert password["subtype"] == "password"

    def submit(submission: dict[str, str], user: User = bob) -> Any:
        return user.driver.integration_actions.submit_interactive_dialog(
            url=opened["url"],
            callback_id=dialog["callback_id"],
            state=dialog["state"],
            submission=submission,
            channel_id=world.channels["equipe-alpha"],
            team_id=world.team_id,
        )

    errors = submit({"key": "", "value": "x"})
    assert errors == {"errors": {"key": "requis"}}
    submit({"key": "DB_PASSWORD", "value": "tr3s-s3cret"})
    assert test_commands.received["dialog"] == {"keys": ["key", "value"], "data": {"project": "alpha"}}

    test_commands.received.clear()
    refused = submit({"key": "X", "value": "y"}, User(world, "carol"))
    assert "réservé" in json.dumps(refused, ensure_ascii=False)
    assert "dialog" not in test_commands.received


def test_french_labels_give_ascii_ids_unique_on_their_post(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test choices")
    post = wait_for(
        lambda: next((p for p in channel_posts(world, "equipe-alpha") if p["message"] == "choix"), None),
        what="the card",
    )
    ids = [a["id"] for a in post["props"]["attachments"][0]["actions"]]
    assert all(re.fullmatch(r"[A-Za-z0-9]+", i) for i in ids), ids
    assert ids[0].startswith("testchoseResolu") and ids[1].startswith("testchoseCamaaide")
    assert len(set(ids)) == 3
    for action_id in reversed(ids):  # the real router 404s on any other id, and presses the first of equal ids
        bob.press(post["id"], action_id)
    assert test_commands.received["chosen"] == [3, 2, 1]
