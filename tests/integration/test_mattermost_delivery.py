"""What reaches people through Mattermost when the server is as strict as the real one.

Every check reads the posts as the emulator stores them: what a person would see.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.outbox import Post
from bot.render.pipelines import failure_reply
from bot.sandbox.world import World
from bot.workflows.pipelines import JobState
from tests.conftest import wait_for
from tests.support import commands as test_commands
from tests.support.mattermost import User, channel_posts


@pytest.fixture(params=[True, False], ids=["bot-is-system-admin", "bot-is-a-plain-bot"])
def any_bot(request: pytest.FixtureRequest, make_world: Callable[..., World]) -> World:
    return make_world(registry=test_commands.registry(), bot_admin=request.param)


def direct_messages(world: World, username: str) -> list[dict[str, Any]]:
    """The bot's posts in its direct-message channel with ``username``."""
    mm = world.states["mattermost"]
    assert world.bot_user is not None
    name = "__".join(sorted((world.bot_user.id, world.users[username].id)))
    channel = mm.find_channel(name, team_id="")
    return [p for p in mm.channel_posts(channel["id"])] if channel else []


def ephemerals(world: World, username: str) -> list[str]:
    return [p["message"] for p in world.states["mattermost"].ephemeral_for(world.users[username].id)]


def test_a_late_slash_reply_reaches_the_user_privately_whatever_the_bots_role(any_bot: World) -> None:
    """The late reply goes through the command's response URL, which needs no role."""
    bob = User(any_bot, "bob")
    bob.run("/cpn test slow")
    wait_for(lambda: "slow done" in ephemerals(any_bot, "bob"), what="the late reply")
    assert direct_messages(any_bot, "bob") == []
    assert [p for p in channel_posts(any_bot, "equipe-alpha") if p["message"] == "slow done"] == []


def test_a_private_confirmation_without_response_url_is_never_lost(any_bot: World) -> None:
    """A dialog's confirmation has no response URL: an ephemeral by the API if the bot may send one
    (system_admin), else a direct message from the bot; refused, it is logged and counted."""
    bot = any_bot.bot
    assert bot is not None and any_bot.bot_user is not None

    async def confirm() -> None:
        bot.outbox.enqueue(
            any_bot.channels["equipe-alpha"], Post("🔐 Secret enregistré"), ephemeral_to=any_bot.users["bob"].id
        )

    any_bot.run(confirm())
    any_bot.wait_idle()
    if any_bot.bot_user.admin:
        assert ephemerals(any_bot, "bob") == ["🔐 Secret enregistré"]
        assert direct_messages(any_bot, "bob") == []
    else:
        assert ephemerals(any_bot, "bob") == []
        assert [p["message"] for p in direct_messages(any_bot, "bob")] == ["🔐 Secret enregistré"]
        assert bot.metrics.value("cpn_outbox_ephemeral_refused_total") == 1
    failed = bot.store.count("outbox", "status = 'failed'")
    assert failed == 0 and bot.metrics.value("cpn_outbox_dropped_total", op="ephemeral") == 0


def test_echoed_slack_markup_in_a_command_answer_stays_inert(any_bot: World) -> None:
    """skip_slack_parsing: without it the server turns <!channel> into @channel (app/slack.go)."""
    answer = User(any_bot, "bob").run("/cpn <!channel> <https://evil.example|ici>")
    shown = ephemerals(any_bot, "bob")[-1]
    assert answer["skip_slack_parsing"] is True
    assert "<!channel>" in shown and "@channel" not in shown and "](https://evil.example)" not in shown


def test_a_failed_jobs_reply_with_an_enormous_log_is_posted_with_the_logs_end(any_bot: World) -> None:
    """Past 16 383 runes the server answers 400 (Post.IsValid) and the reply would be lost."""
    job = JobState(id=7, name="build", stage="build", status="failed", url="https://gitlab.example/j/7")
    huge_line = "é" * 40000  # one minified line, longer than a whole post
    trace = "\n".join([*(f"ligne {i} " + "x" * 500 for i in range(60)), huge_line, "ERREUR FINALE: exit 1"])
    bot = any_bot.bot
    assert bot is not None
    message = failure_reply(job, trace, bot.tr)

    async def post() -> None:
        bot.outbox.enqueue(any_bot.channels["equipe-alpha"], Post(message))

    any_bot.run(post())
    posts = wait_for(lambda: channel_posts(any_bot, "equipe-alpha"), what="the reply")
    assert "ERREUR FINALE: exit 1" in posts[-1]["message"]


def _bot_socket_up(world: World) -> bool:
    assert world.bot_user is not None
    bot_id = world.bot_user.id
    return any(conn.user_id == bot_id for conn in world.states["mattermost"].hub.active())


def _replies_to(world: World, post_id: str) -> list[dict[str, Any]]:
    assert world.bot_user is not None
    bot_id = world.bot_user.id
    return [p for p in channel_posts(world, "equipe-alpha") if p["root_id"] == post_id and p["user_id"] == bot_id]


@pytest.mark.parametrize("server_kept_the_connection", [True, False], ids=["resumed", "server-forgot-it"])
def test_a_mention_sent_while_the_websocket_is_down_is_answered_exactly_once(
    make_world: Callable[..., World], server_kept_the_connection: bool
) -> None:
    """Resumed: the server replays the missed ``posted`` event (connection_id + sequence_number).
    Forgotten (reaped after 5 min, restarted): a new hello; the bot reads its channels back."""
    world = make_world(config_overrides={"mattermost": {"websocket_reconnect_seconds": 0.05}})
    hub = world.states["mattermost"].hub
    assert world.bot_user is not None
    wait_for(lambda: _bot_socket_up(world), what="the bot's websocket")
    before = User(world, "bob").say("@cpn-bot bonjour")
    wait_for(lambda: _replies_to(world, before["id"]), what="an answer before the drop")
    hub.drop(world.bot_user.id, refuse=True)  # the network goes; reconnections fail meanwhile
    wait_for(lambda: not _bot_socket_up(world), what="the drop")
    during = User(world, "bob").say("@cpn-bot vous êtes là ?")
    if not server_kept_the_connection:
        hub.forget()
    hub.allow()
    wait_for(lambda: _replies_to(world, during["id"]), timeout=10, what="the answer to the mention of the drop")
    after = User(world, "bob").say("@cpn-bot et maintenant ?")
    wait_for(lambda: _replies_to(world, after["id"]), what="an answer after the reconnection")
    world.wait_idle()
    assert [len(_replies_to(world, p["id"])) for p in (before, during, after)] == [1, 1, 1]
    outcome = "resumed" if server_kept_the_connection else "lost"
    assert world.bot is not None and world.bot.metrics.value("cpn_listener_reconnects_total", outcome=outcome) == 1
