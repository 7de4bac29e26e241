"""Every confirmation works once: a second press of either button is refused, the action ran once."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from bot.sandbox.world import World
from tests.integration.test_deploy import make_project, settled
from tests.support import platform as svc
from tests.support.mattermost import User

CONFIRMED = [
    # (command, what the confirmed action is recorded as in the operations table)
    ("/cpn env remove alpha dev", "env.remove"),
    ("/cpn repo remove alpha api", "repo.remove"),
    ("/cpn project delete alpha", "project.delete"),
    ("/cpn deploy alpha prod --image-tag 2.0.0", "deploy.run"),
]


@pytest.mark.parametrize("second", ["Confirmer", "Annuler"])
@pytest.mark.parametrize(("command", "kind"), CONFIRMED, ids=[c.split()[1] + "-" + c.split()[2] for c, _ in CONFIRMED])
def test_a_confirmation_works_once_whichever_button_is_pressed_again(
    make_world: Callable[..., World], command: str, kind: str, second: str
) -> None:
    world = make_project(make_world)
    bob, mm = world.users["bob"], world.states["mattermost"]
    User(world, "bob").run(command)
    svc.press_ephemeral(world, "bob", "Confirmer")
    settled(world)
    svc.press_ephemeral(world, "bob", second)  # the same card, pressed again
    settled(world)
    refusal = mm.ephemeral_for(bob.id)[-1]["message"]
    assert re.fullmatch(r"⛔ Ce choix a déjà été fait : « Confirmer » par @bob à \d\d:\d\d\.", refusal), refusal
    assert not any(e["message"] == "Annulé." for e in mm.ephemeral_for(bob.id))
    kinds = [row[0] for row in world.store().db.execute("SELECT kind FROM operations")]
    assert kinds.count(kind) == 1, kinds
