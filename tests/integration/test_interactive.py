"""Buttons and dialogs: only the right user, only before expiry, only with the bot's signature."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

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
    assert answer.json()["skip_slack_parsing"] is True  # else the server rewrites Slack links in it
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
    # Field errors used nothing up: the same dialog is sent again, corrected. Its message for the
    # submitter is an ephemeral post (a dialog answer has no ephemeral_text), the dialog closing.
    assert submit({"key": "DB_PASSWORD", "value": "tr3s-s3cret"}) == {}
    assert test_commands.received["dialog"] == {"keys": ["key", "value"], "data": {"project": "alpha"}, "by": "bob"}

    def delivered() -> list[Any]:  # ephemeral, or a direct message where the bot may not post ephemerals
        shown = [p for p in mm.ephemeral_for(bob.me.id) if p["message"] == "reçu"]
        return shown + [p for p in list(mm.posts.values()) if p["message"] == "reçu"]

    assert wait_for(delivered, what="the message")
    again = submit({"key": "DB_PASSWORD", "value": "autre"})
    assert set(again) == {"error"} and "déjà été envoyé par @bob" in again["error"]

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


def test_the_pressers_name_comes_from_mattermost_not_from_the_payload(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test button")
    context = card(world)["props"]["attachments"][0]["actions"][0]["integration"]["context"]
    answer = httpx.post(
        f"{world.bot_url}/mattermost/actions",
        json={"user_id": bob.me.id, "user_name": "carol", "context": context},
    )
    assert answer.status_code == 200
    assert test_commands.received["pressed_by_name"] == "bob"
    assert "@bob" in answer.json()["update"]["message"]


def test_a_second_press_of_a_used_card_is_refused_and_does_nothing(make_world) -> None:  # type: ignore[no-untyped-def]
    world = make_world(registry=test_commands.registry())
    test_commands.received.clear()
    bob = User(world, "bob")
    bob.run("/cpn test button")
    context = card(world)["props"]["attachments"][0]["actions"][0]["integration"]["context"]
    replay = {"user_id": bob.me.id, "context": context}
    assert httpx.post(f"{world.bot_url}/mattermost/actions", json=replay).status_code == 200
    test_commands.received.clear()
    again = httpx.post(f"{world.bot_url}/mattermost/actions", json=replay).json()
    assert "pressed_by" not in test_commands.received
    assert set(again) == {"ephemeral_text", "skip_slack_parsing"}
    assert re.fullmatch(r"⛔ Ce choix a déjà été fait : « Confirmer » par @bob à \d\d:\d\d\.", again["ephemeral_text"])


# -- hostile bodies: a 400 with a reason or a 401, never a 500 -------------------------------------

USER = "a" * 26
DEEP = "[" * 10_000 + "]" * 10_000
CONTEXT = {"action": "test.pressed", "data": {}, "user": USER, "exp": 4_000_000_000, "nonce": "0" * 16, "sig": "0" * 64}


def _body(**changes: Any) -> bytes:
    return json.dumps({"user_id": USER, "context": CONTEXT} | changes, ensure_ascii=False).encode()


def _state(**context_changes: Any) -> str:
    return json.dumps(CONTEXT | context_changes)


ACTION_BODIES = {
    "not JSON": (b"{not json", 400),
    "a list": (b"[]", 400),
    "nested 10 000 deep": (f'{{"user_id": "{USER}", "context": {DEEP}}}'.encode(), 400),
    "exp 1e999": (_body().replace(b'"exp": 4000000000', b'"exp": 1e999'), 400),
    "exp a string": (_body(context=CONTEXT | {"exp": "4000000000"}), 401),
    "exp a bool": (_body(context=CONTEXT | {"exp": True}), 401),
    "sig not ASCII": (_body(context=CONTEXT | {"sig": "é" * 64}), 401),
    "sig not hex": (_body(context=CONTEXT | {"sig": "z" * 64}), 401),
    "sig a number": (_body(context=CONTEXT | {"sig": 7}), 401),
    "lone surrogate": (_body().replace(b'"user_id"', b'"user_name": "\\ud800", "user_id"'), 400),
    "context a list": (_body(context=[CONTEXT]), 401),
    "context a string": (_body(context="x"), 401),
    "user_id a path": (_body(user_id="../../system/ping"), 400),
    "user_id a number": (_body(user_id=7), 400),
    "user_id missing": (json.dumps({"context": CONTEXT}).encode(), 400),
    "channel_id a path": (_body(channel_id="../../users/me/xxxxxxxxxxx"), 400),
    "a well-shaped forgery": (_body(), 401),
}


def _dialog(**changes: Any) -> bytes:
    body = {"type": "dialog_submission", "callback_id": "test.dialog", "state": _state(), "user_id": USER}
    return json.dumps(body | {"submission": {"key": "k"}} | changes).encode()


DIALOG_BODIES = {
    "state nested 10 000 deep": (_dialog(state=DEEP), 400),
    "state not JSON": (_dialog(state="{x"), 400),
    "state an object": (_dialog(state=CONTEXT), 400),
    "state exp 1e999": (_dialog(state=_state().replace('"exp": 4000000000', '"exp": 1e999')), 400),
    "state a list": (_dialog(state="[]"), 400),
    "submission a list": (_dialog(submission=["k"]), 400),
    "submission a nested value": (_dialog(submission={"k": {"v": 1}}), 400),
    "submission a huge value": (_dialog(submission={"k": "x" * 20_000}), 400),
    "submission too many fields": (_dialog(submission={f"k{i}": "v" for i in range(60)}), 400),
    "user_id a path": (_dialog(user_id="../users/me"), 400),
    "a well-shaped forgery": (_dialog(), 401),
}


@pytest.mark.parametrize(
    ("route", "raw", "status"),
    [
        *(pytest.param("actions", raw, status, id=f"actions: {name}") for name, (raw, status) in ACTION_BODIES.items()),
        *(pytest.param("dialogs", raw, status, id=f"dialogs: {name}") for name, (raw, status) in DIALOG_BODIES.items()),
    ],
)
def test_a_hostile_body_gets_a_reason_or_a_401_never_a_500(
    fuzz_world: World, route: str, raw: bytes, status: int
) -> None:
    answer = httpx.post(f"{fuzz_world.bot_url}/mattermost/{route}", content=raw)
    assert answer.status_code == status, answer.text
    assert isinstance(answer.json()["error"], str) and answer.json()["error"]
    assert httpx.get(f"{fuzz_world.bot_url}/healthz").status_code == 200


def test_a_secret_dialog_submitted_three_times_at_once_writes_one_vault_version(make_world) -> None:  # type: ignore[no-untyped-def]
    world: World = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn secret set alpha API_KEY")
    mm = world.states["mattermost"]
    opened = wait_for(lambda: [d for d in mm.dialogs_opened if d["user_id"] == bob.me.id], what="the dialog")[-1]
    body = {
        "url": opened["url"],
        "callback_id": opened["dialog"]["callback_id"],
        "state": opened["dialog"]["state"],
        "channel_id": world.channels["equipe-alpha"],
        "team_id": world.team_id,
        "cancelled": False,
    }

    async def submit_three() -> list[Any]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {bob.me.token}"}) as client:
            url = f"{world.servers['mattermost'].url}/api/v4/actions/dialogs/submit"
            answers = await asyncio.gather(
                *(client.post(url, json=body | {"submission": {"value": f"s3cret-{n}"}}) for n in range(3))
            )
        return [a.json() for a in answers]

    answers = asyncio.run(submit_three())
    world.wait_idle(10)
    assert sorted(answers, key=len) == [{}, {"error": ANY_TEXT}, {"error": ANY_TEXT}]
    assert all("déjà été envoyé par @bob" in a["error"] for a in answers if a)
    listed = bob.run("/cpn secret list alpha")["text"]
    assert "API_KEY" in listed and re.search(r"— v1\b", listed) and not re.search(r"— v\d*[02-9]", listed)


class _AnyText(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_TEXT = _AnyText()
