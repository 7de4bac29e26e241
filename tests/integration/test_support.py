"""Support for beta testers: answers from the knowledge base, tickets relayed to the platform team,
the platform's health. Everything through Mattermost as people use it, against a whole World."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.knowledge import load_articles
from bot.sandbox.world import Timings, World
from bot.scheduler import Job
from commands.support import refresh_health, remind
from tests.conftest import wait_for
from tests.support import platform as svc
from tests.support.mattermost import User, assert_inert, channel_posts, text_of

KB = Path(__file__).resolve().parents[2] / "kb"
SERVICES = ("ArgoCD", "GitLab", "Mattermost", "Nexus", "Quay", "SonarQube", "Vault")
INJECTION = "@all @channel [clique ici](https://evil.example/x) et @here"
Json = dict[str, Any]


@pytest.fixture(scope="module")
def shared() -> Iterator[World]:
    """One platform for the tests that only add their own questions and tickets."""
    world = World.create(timings=Timings.fast()).start()
    try:
        wait_for(lambda: listening(world), what="the bot's websocket")
        yield world
    finally:
        world.stop()


# -- reading what people see --------------------------------------------------------------------------


def run_job(world: World, job: Job) -> None:
    """Run a scheduled job once, now, on the bot's loop."""
    bot = world.bot
    assert bot is not None

    async def once() -> None:
        await job(bot)

    world.run(once())


def listening(world: World) -> bool:
    """The bot's websocket is connected: messages written from now on reach it."""
    mm = world.states["mattermost"]
    assert world.bot_user is not None
    with mm.lock:
        return any(sock.user_id == world.bot_user.id for sock in mm._sockets)


def answering(world: World) -> bool:
    """The bot's HTTP side is up: slash commands and buttons reach it."""
    try:
        return httpx.get(f"{world.bot_url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def bot_id(world: World) -> str:
    assert world.bot_user is not None
    return world.bot_user.id


def shown(post: Json) -> str:
    """What a person reads in a post: its message and its attachments."""
    return text_of({"text": post.get("message", ""), "props": post.get("props")})


def buttons(post: Json) -> dict[str, str]:
    """Label → action id of a post's buttons."""
    return {
        action["name"]: action["id"]
        for attachment in (post.get("props") or {}).get("attachments") or []
        for action in attachment.get("actions") or []
    }


def bot_replies(world: World, root_id: str) -> list[Json]:
    return [p for p in world.states["mattermost"].thread(root_id) if p["user_id"] == bot_id(world)]


def reply_in(world: World, root_id: str, contains: str) -> Json:
    """The bot's reply in the thread of ``root_id`` that shows ``contains`` (waited for)."""
    found: Json = wait_for(
        lambda: next((p for p in bot_replies(world, root_id) if contains in shown(p)), None),
        what=f"a reply with {contains!r}",
    )
    return found


def last_ephemeral(world: World, user: User) -> str:
    return str(world.states["mattermost"].ephemeral_for(user.me.id)[-1]["message"])


def dm(world: World, user: User, message: str, root_id: str = "") -> Json:
    """``user`` writes to the bot in their direct conversation."""
    channel = user.driver.channels.create_direct_channel([user.me.id, bot_id(world)])
    post: Json = user.driver.posts.create_post(channel["id"], message, root_id=root_id or None)
    return post


# -- tickets ----------------------------------------------------------------------------------------


def open_ticket(user: User, command: str, channel: str = "equipe-alpha") -> int:
    answer = user.run(command, channel=channel)["text"]
    found = re.search(r"Ticket n°(\d+) ouvert", answer)
    assert found, answer
    return int(found.group(1))


def support_card(world: World, number: int, status: str = "") -> Json:
    """The ticket's card in the support channel (with ``status`` in its title, once it has it)."""
    title = f"Ticket n°{number} — {status}"

    def find() -> Json | None:
        for post in channel_posts(world, "support-cpn"):
            attachments = (post.get("props") or {}).get("attachments") or []
            if post["user_id"] == bot_id(world) and attachments and title in attachments[0].get("title", ""):
                return post
        return None

    card: Json = wait_for(find, what=f"the card of ticket {number} ({status or 'any status'})")
    return known(world, card)


def direct_channel(world: World, user: User) -> str:
    """The name under which ``channel_posts`` and ``User.say`` find ``user``'s conversation with the bot."""
    channel = user.driver.channels.create_direct_channel([user.me.id, bot_id(world)])
    name = f"dm-{user.me.username}"
    world.channels[name] = channel["id"]
    return name


def reporter_root(world: World, number: int, channel: str = "equipe-alpha") -> Json:
    """The post the bot opened the reporter's thread with (``/cpn support``)."""
    root: Json = wait_for(
        lambda: next(
            (p for p in channel_posts(world, channel) if p["message"].startswith(f"🎫 Ticket n°{number} de ")), None
        ),
        what=f"the reporter's thread of ticket {number}",
    )
    return known(world, root)


def known(world: World, post: Json) -> Json:
    """``post``, once the bot has noted it made it (a reply in its thread is then recognised).

    A person cannot answer within the milliseconds between Mattermost showing a post and the bot
    recording its id; a test can.
    """
    store = world.store()
    wait_for(
        lambda: store.db.execute("SELECT 1 FROM posts WHERE post_id = ?", (post["id"],)).fetchone(),
        what="the bot to record its post",
    )
    return post


def press(world: World, user: User, post: Json, label: str) -> str:
    """``user`` presses the button ``label`` of a stored post; the ephemeral answer they got, if any."""
    before = len(world.states["mattermost"].ephemeral_for(user.me.id))
    user.press(post["id"], buttons(post)[label])
    after = world.states["mattermost"].ephemeral_for(user.me.id)
    return str(after[-1]["message"]) if len(after) > before else ""


def ticket_row(world: World, number: int) -> Json:
    rows = list(world.store().db.table("tickets").rows_where("id = ?", [number]))
    assert rows, number
    row: Json = rows[0]
    return row


# -- answers from the knowledge base ----------------------------------------------------------------


def test_ask_answers_with_the_best_article_its_link_related_ones_and_two_buttons(shared: World) -> None:
    answer = User(shared, "bob").run("/cpn ask comment synchroniser mon dépôt ?")
    assert answer["response_type"] == "ephemeral"
    card = answer["attachments"][0]
    assert card["title"] == "📘 Synchroniser un dépôt externe vers le GitLab de la plateforme"
    lines = card["text"].splitlines()
    assert lines[0].startswith("Lancez `/cpn sync <projet> <dépôt>`")  # the article's own markdown, not escaped
    assert (
        "En savoir plus : [Gestion des dépôts](https://cloud-pi-native.fr/guide/repositories-management.html)" in lines
    )
    related = next(line for line in lines if line.startswith("Voir aussi : "))
    assert 1 <= related.count("« ") <= 2
    assert [a["name"] for a in card["actions"]] == ["Ça m'a aidé", "Ouvrir un ticket"]


def test_a_question_the_knowledge_base_cannot_answer_offers_a_ticket_only(shared: World) -> None:
    answer = User(shared, "bob").run("/cpn ask quelle est la recette de la tarte aux pommes ?")
    card = answer["attachments"][0]
    assert card["title"] == "🤔 Je ne sais pas répondre à cette question"
    assert "la recette de la tarte aux pommes" in card["text"]
    assert [a["name"] for a in card["actions"]] == ["Ouvrir un ticket"]


def test_it_helped_is_stored_with_the_question(shared: World) -> None:
    bob = User(shared, "bob")
    bob.run("/cpn ask comment créer un projet ?")
    svc.press_ephemeral(shared, "bob", "Ça m'a aidé")
    assert last_ephemeral(shared, bob) == "Merci pour votre retour !"
    row = list(shared.store().db.table("kb_questions").rows_where("question = ?", ["comment créer un projet ?"]))[-1]
    assert (row["user_id"], row["article_id"], row["known"], row["helpful"]) == (bob.me.id, "creer-un-projet", 1, 1)


def test_the_ticket_button_of_an_ephemeral_answer_opens_a_ticket_in_a_thread_of_its_own(shared: World) -> None:
    # The answer to /cpn ask is ephemeral: Mattermost does not store it, so it cannot be the thread;
    # only the asker saw it, so the ticket's thread is in their direct conversation with the bot.
    question = "le runner du pipeline de recette est introuvable"
    bob = User(shared, "bob")
    bob.run(f"/cpn ask {question}")
    svc.press_ephemeral(shared, "bob", "Ouvrir un ticket")
    opened = re.search(r"Ticket n°(\d+) ouvert", last_ephemeral(shared, bob))
    assert opened, last_ephemeral(shared, bob)
    number = int(opened.group(1))
    root = reporter_root(shared, number, channel=direct_channel(shared, bob))
    assert question in root["message"]
    reply_in(shared, root["id"], "transmis à l'équipe plateforme")
    assert f"> {question}" in shown(support_card(shared, number, "nouveau"))
    row = list(shared.store().db.table("kb_questions").rows_where("question = ?", [question]))[-1]
    assert row["helpful"] == 0  # a ticket instead of an answer


def test_a_ticket_from_a_private_answer_stays_private_and_carries_the_channel_s_project(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    wait_for(lambda: listening(world), what="the bot's websocket")
    bob, alice = User(world, "bob"), User(world, "alice")
    bob.run("/cpn project create etatcivil")
    world.wait_idle(30)
    in_channel = len(channel_posts(world, "equipe-alpha"))
    question = "pourquoi mon déploiement est en échec ?"
    bob.run(f"/cpn ask {question}")
    svc.press_ephemeral(world, "bob", "Ouvrir un ticket")
    opened = last_ephemeral(world, bob)
    assert "entre vous et l'équipe plateforme" in opened, opened
    number = int(re.search(r"Ticket n°(\d+) ouvert", opened).group(1))  # type: ignore[union-attr]
    card = support_card(world, number, "nouveau")
    assert card["props"]["attachments"][0]["text"].splitlines()[0] == "De @bob · projet : etatcivil"
    assert ticket_row(world, number)["project"] == "etatcivil"
    root = reporter_root(world, number, channel=direct_channel(world, bob))
    reply_in(world, root["id"], f"Ticket n°{number} transmis à l'équipe plateforme")
    # The platform team and the asker talk through the support thread and the direct conversation.
    alice.say("Quel environnement ?", channel="support-cpn", root_id=card["id"])
    reply_in(world, root["id"], "💬 @alice (équipe plateforme) : Quel environnement ?")
    bob.say("la recette", channel=direct_channel(world, bob), root_id=root["id"])
    reply_in(world, card["id"], "💬 @bob : la recette")
    press(world, alice, support_card(world, number), "Résolu")
    reply_in(world, root["id"], "résolu")
    world.wait_idle()
    assert len(channel_posts(world, "equipe-alpha")) == in_channel  # nothing in the channel, at any step


def test_a_public_ticket_from_a_linked_channel_carries_its_project(make_world: Callable[..., World]) -> None:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create etatcivil")
    world.wait_idle(30)
    number = open_ticket(bob, "/cpn support mon pipeline reste bloqué")
    assert ticket_row(world, number)["project"] == "etatcivil"
    assert "projet : etatcivil" in shown(support_card(world, number, "nouveau"))
    reporter_root(world, number)  # a ticket asked in the channel keeps its thread there
    assert ticket_row(world, open_ticket(bob, "/cpn support --project beta autre chose"))["project"] == "beta"


def test_pressing_open_a_ticket_twice_opens_one_ticket(shared: World) -> None:
    question = "le certificat TLS de mon ingress a expiré hier soir"
    bob = User(shared, "bob")
    bob.run(f"/cpn ask {question}")
    svc.press_ephemeral(shared, "bob", "Ouvrir un ticket")
    opened = re.search(r"Ticket n°(\d+) ouvert", last_ephemeral(shared, bob))
    assert opened, last_ephemeral(shared, bob)
    svc.press_ephemeral(shared, "bob", "Ouvrir un ticket")
    # The button is used up (single-use contexts): the second press is refused before any effect.
    assert last_ephemeral(shared, bob).startswith("⛔ Ce choix a déjà été fait : « Ouvrir un ticket » par @bob")
    rows = list(shared.store().db.table("tickets").rows_where("message = ?", [question]))
    assert len(rows) == 1


def test_a_direct_message_is_answered_in_its_thread(shared: World) -> None:
    question = dm(shared, User(shared, "carol"), "comment ajouter un collègue à mon projet ?")
    card = reply_in(shared, question["id"], "📘")
    attachment = card["props"]["attachments"][0]
    assert attachment["title"] == "📘 Obtenir un compte et ajouter un collègue au projet"
    assert "[Gestion des équipes](https://cloud-pi-native.fr/guide/team.html)" in attachment["text"]
    assert set(buttons(card)) == {"Ça m'a aidé", "Ouvrir un ticket"}


def test_a_mention_in_a_channel_is_answered_in_its_thread_and_only_the_asker_may_press(shared: World) -> None:
    bob = User(shared, "bob")
    question = bob.say("@cpn-bot comment ajouter un dépôt privé ?")
    card = reply_in(shared, question["id"], "📘 Ajouter un dépôt Git au projet")
    assert card["channel_id"] == shared.channels["equipe-alpha"] and card["root_id"] == question["id"]
    assert "réservé à la personne" in press(shared, User(shared, "carol"), card, "Ça m'a aidé")
    assert press(shared, bob, card, "Ça m'a aidé") == "Merci pour votre retour !"


def test_a_message_with_only_the_mention_gets_the_greeting(shared: World) -> None:
    question = User(shared, "bob").say("@cpn-bot")
    assert "Tapez `/cpn help`" in reply_in(shared, question["id"], "Bonjour")["message"]


def test_channel_wide_mentions_and_command_answers_are_not_questions_to_the_bot(shared: World) -> None:
    bob = User(shared, "bob")
    everyone = bob.say("@all réunion de l'équipe à 14 h")
    here = bob.say("@here quelqu'un a vu mon café ?")
    # The in-channel answer of a slash command, typed in the conversation with the bot: Mattermost posts
    # it as the user, marked from_webhook.
    channel = bob.driver.channels.create_direct_channel([bob.me.id, bot_id(shared)])
    command_answer = shared.states["mattermost"].create_post(
        bob.me.id, channel["id"], "✅ @carol ajoutée au projet alpha", props={"from_webhook": "true"}
    )
    last = bob.say("@cpn-bot comment créer un environnement ?")
    reply_in(shared, last["id"], "📘")
    shared.wait_idle()
    for post in (everyone, here, command_answer):
        assert bot_replies(shared, post["id"]) == [], post["message"]


def test_an_empty_question_is_explained(shared: World) -> None:
    bob = User(shared, "bob")
    assert "Argument manquant : <question>" in bob.run("/cpn ask")["text"]
    assert "Posez votre question après la commande" in bob.run("/cpn ask  ?! ")["text"]
    assert "Décrivez votre demande" in bob.run("/cpn support ?")["text"]


def test_a_question_made_to_inject_mentions_and_links_is_shown_inert(shared: World) -> None:
    bob = User(shared, "bob")
    answer = bob.run(f"/cpn ask {INJECTION} recette de cuisine ?")
    text = text_of(answer)
    assert "`@all`" in text and "`@channel`" in text  # shown as typed, in code spans
    assert_inert(text)
    question = bob.say(f"@cpn-bot {INJECTION} la météo de demain ?")
    assert_inert(shown(reply_in(shared, question["id"], "Je ne sais pas")))


def test_a_10000_character_message_is_answered_briefly(shared: World) -> None:
    bob = User(shared, "bob")
    huge = "pourquoi " + "a" * 9991
    question = dm(shared, bob, huge)
    reply = reply_in(shared, question["id"], "Je ne sais pas")
    assert len(shown(reply)) < 600
    assert len(text_of(bob.run(f"/cpn ask {huge}"))) < 600
    stored = list(shared.store().db.table("kb_questions").rows_where("user_id = ?", [bob.me.id]))
    assert all(len(row["question"]) <= 1000 for row in stored)
    before = shared.store().count("tickets")
    assert "4000 caractères au plus" in bob.run(f"/cpn support {huge}")["text"]
    assert shared.store().count("tickets") == before


def test_faq_lists_every_topic(shared: World) -> None:
    text = User(shared, "dave").run("/cpn faq")["text"]
    assert text.startswith("#### Sujets de la base de connaissances")
    topics = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(topics) == len(load_articles(KB))
    assert "- Synchroniser un dépôt externe vers le GitLab de la plateforme" in topics


def test_kb_stats_are_for_platform_admins_and_count_questions_answers_and_feedback(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn ask comment synchroniser mon dépôt ?")
    svc.press_ephemeral(world, "bob", "Ça m'a aidé")
    bob.run("/cpn ask comment créer un projet ?")
    bob.run(f"/cpn ask {INJECTION} horaires de la cantine ?")
    bob.run("/cpn ask quelle est la recette de la tarte aux pommes ?")
    svc.press_ephemeral(world, "bob", "Ouvrir un ticket")
    assert "réservé" in bob.run("/cpn kb stats")["text"]
    stats = User(world, "alice").run("/cpn kb stats")["text"]
    assert "4 questions, 50 % trouvées, 1 « ça m'a aidé », 1 ticket ouvert depuis une réponse." in stats
    assert "`synchroniser-un-depot` (1)" in stats and "`creer-un-projet` (1)" in stats
    unanswered = stats.split("Dernières questions sans réponse :")[1].strip().splitlines()
    assert unanswered[0] == "- quelle est la recette de la tarte aux pommes ?"
    assert "horaires de la cantine" in unanswered[1] and len(unanswered) == 2
    assert_inert(stats)


def test_kb_stats_do_not_count_an_answer_turned_into_a_ticket_as_found(make_world: Callable[..., World]) -> None:
    """Issue 14: a wrong answer (the asker opened a ticket from it) is not "found" nor a useful article."""
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn ask comment synchroniser mon dépôt ?")
    svc.press_ephemeral(world, "bob", "Ça m'a aidé")
    bob.run("/cpn ask comment créer un projet ?")
    svc.press_ephemeral(world, "bob", "Ouvrir un ticket")
    stats = User(world, "alice").run("/cpn kb stats")["text"]
    assert "2 questions, 50 % trouvées, 1 « ça m'a aidé », 1 ticket ouvert depuis une réponse." in stats
    assert "`synchroniser-un-depot` (1)" in stats and "creer-un-projet" not in stats
    unanswered = stats.split("Dernières questions sans réponse :")[1].strip().splitlines()
    assert unanswered == ["- comment créer un projet ?"]


WEBINAR = """+++
id = "webinaire-beta"
title = "Le webinaire hebdomadaire des bêta-testeurs"
tags = ["webinaire", "bêta-testeurs", "visioconférence", "hebdomadaire"]
commands = ["/cpn support <message>"]
summary = "Le webinaire des bêta-testeurs a lieu chaque jeudi à 14 h ; le lien est épinglé dans le canal de support."

[[links]]
title = "Démarrer"
url = "https://cloud-pi-native.fr/guide/get-started.html"
+++

Chaque jeudi, l'équipe plateforme présente les nouveautés aux bêta-testeurs et répond à leurs questions.
"""


def test_kb_reload_reads_the_articles_again_without_a_restart(make_world: Callable[..., World], tmp_path: Path) -> None:
    kb = tmp_path / "kb"
    shutil.copytree(KB, kb)
    world = make_world(config_overrides={"support": {"kb_dir": str(kb)}})
    bob, alice = User(world, "bob"), User(world, "alice")
    question = "/cpn ask quand a lieu le webinaire des bêta-testeurs ?"
    assert "Je ne sais pas" in text_of(bob.run(question))
    (kb / "webinaire-beta.md").write_text(WEBINAR, encoding="utf-8")
    assert "réservé" in bob.run("/cpn kb reload")["text"]
    count = len(load_articles(KB)) + 1
    assert alice.run("/cpn kb reload")["text"] == f"📚 Base de connaissances rechargée : {count} articles."
    card = bob.run(question)["attachments"][0]
    assert card["title"] == "📘 Le webinaire hebdomadaire des bêta-testeurs"
    assert "chaque jeudi à 14 h" in card["text"]
    # A malformed article: nothing is reloaded, the articles in place keep answering.
    (kb / "brouillon.md").write_text("pas de front matter\n", encoding="utf-8")
    refused = alice.run("/cpn kb reload")["text"]
    assert refused.startswith("⚠️ La base de connaissances n'a pas été rechargée") and "brouillon.md" in refused
    assert bob.run(question)["attachments"][0]["title"] == "📘 Le webinaire hebdomadaire des bêta-testeurs"
    audit = world.store().db.execute("SELECT COUNT(*) FROM audit WHERE action = 'kb.reload'").fetchone()[0]
    assert audit == 1


# -- tickets ----------------------------------------------------------------------------------------


def test_a_ticket_reaches_the_support_channel_and_the_reporter_gets_a_thread(shared: World) -> None:
    bob = User(shared, "bob")
    number = open_ticket(bob, "/cpn support mon pipeline reste bloqué sur pending --project alpha")
    card = support_card(shared, number, "nouveau")
    attachment = card["props"]["attachments"][0]
    assert attachment["title"] == f"🆕 Ticket n°{number} — nouveau"
    assert attachment["text"].splitlines()[:2] == [
        "De @bob · projet : alpha",
        "> mon pipeline reste bloqué sur pending",
    ]
    assert list(buttons(card)) == ["Prendre", "Résolu"]
    root = reporter_root(shared, number)
    assert root["message"] == f"🎫 Ticket n°{number} de @bob : mon pipeline reste bloqué sur pending"
    reply_in(shared, root["id"], f"Ticket n°{number} transmis à l'équipe plateforme")
    row = ticket_row(shared, number)
    assert (row["status"], row["project"], row["reporter_id"]) == ("open", "alpha", bob.me.id)
    # The flag may also come first, as in the command's example.
    first = open_ticket(bob, "/cpn support --project beta la console ne charge plus")
    assert ticket_row(shared, first)["project"] == "beta"
    assert ticket_row(shared, first)["message"] == "la console ne charge plus"
    before = shared.store().count("tickets")
    assert "n'est pas un nom de projet valide" in bob.run("/cpn support ça plante --project Alpha!")["text"]
    assert shared.store().count("tickets") == before


def test_only_platform_staff_may_take_or_resolve_a_ticket(shared: World) -> None:
    number = open_ticket(User(shared, "carol"), "/cpn support le namespace de dev a disparu")
    card = support_card(shared, number, "nouveau")
    for name in ("carol", "dave"):
        user = User(shared, name)
        assert press(shared, user, card, "Prendre") == "⛔ Réservé à l'équipe plateforme."
        assert press(shared, user, card, "Résolu") == "⛔ Réservé à l'équipe plateforme."
    assert ticket_row(shared, number)["status"] == "open"
    assert shared.states["mattermost"].posts[card["id"]]["props"]["attachments"][0]["title"].endswith("nouveau")


def test_staff_and_reporter_talk_through_the_two_threads_until_resolution(shared: World) -> None:
    bob, alice, carol = User(shared, "bob"), User(shared, "alice"), User(shared, "carol")
    number = open_ticket(bob, "/cpn support la synchro de api échoue depuis ce matin --project alpha")
    card = support_card(shared, number, "nouveau")
    root = reporter_root(shared, number)

    assert press(shared, alice, card, "Prendre") == ""
    card = support_card(shared, number, "pris en charge")
    assert "Pris en charge par @alice" in shown(card) and list(buttons(card)) == ["Résolu"]
    reply_in(shared, root["id"], f"Votre ticket n°{number} est pris en charge par @alice")

    carol.say("pareil chez nous", channel="support-cpn", root_id=card["id"])  # not platform staff
    alice.say("Pouvez-vous relancer la synchro ?", channel="support-cpn", root_id=card["id"])
    reply_in(shared, root["id"], "💬 @alice (équipe plateforme) : Pouvez-vous relancer la synchro ?")
    bob.say("Relancée, toujours en échec", root_id=root["id"])
    relayed = wait_for(
        lambda: [p for p in bot_replies(shared, card["id"]) if p["message"] == "💬 @bob : Relancée, toujours en échec"],
        what="the reporter's answer in the support thread",
    )
    assert len(relayed) == 1
    assert not [p for p in bot_replies(shared, root["id"]) if "pareil chez nous" in p["message"]]

    assert press(shared, alice, card, "Résolu") == ""
    card = support_card(shared, number, "résolu")
    assert buttons(card) == {}
    reply_in(shared, root["id"], f"✅ @bob, votre ticket n°{number} est résolu")
    row = ticket_row(shared, number)
    assert (row["status"], row["assignee_name"]) == ("resolved", "alice") and row["resolved_at"]

    # "Répondez dans ce fil s'il reste un problème": the reporter's answer reopens the ticket.
    bob.say("Le problème est revenu", root_id=root["id"])
    reply_in(shared, card["id"], "💬 @bob : Le problème est revenu")
    card = support_card(shared, number, "pris en charge")
    assert list(buttons(card)) == ["Résolu"]
    assert ticket_row(shared, number)["status"] == "taken"


def test_a_ticket_opened_from_a_direct_message_answer_lives_in_that_conversation(shared: World) -> None:
    dave, alice = User(shared, "dave"), User(shared, "alice")
    question = dm(shared, dave, "le quota de stockage de mon bucket S3 est-il extensible ?")
    card = wait_for(lambda: next((p for p in bot_replies(shared, question["id"]) if buttons(p)), None))
    opened = press(shared, dave, card, "Ouvrir un ticket")
    number = int(re.search(r"Ticket n°(\d+) ouvert", opened).group(1))  # type: ignore[union-attr]
    reply_in(shared, question["id"], f"Ticket n°{number} transmis à l'équipe plateforme")
    assert ticket_row(shared, number)["reporter_root_id"] == question["id"]
    support = support_card(shared, number, "nouveau")
    assert "bucket S3" in shown(support)
    alice.say("Oui, jusqu'à 500 Go : quel projet ?", channel="support-cpn", root_id=support["id"])
    reply_in(shared, question["id"], "💬 @alice (équipe plateforme) : Oui, jusqu'à 500 Go : quel projet ?")
    dm(shared, dave, "le projet alpha", root_id=question["id"])
    reply_in(shared, support["id"], "💬 @dave : le projet alpha")
    # The answer went to the ticket: the bot did not also take it for a new question.
    shared.wait_idle()
    assert not [p for p in bot_replies(shared, question["id"]) if "le projet alpha" in shown(p)]


def test_ticket_list_show_and_close(shared: World) -> None:
    carol, alice, dave = User(shared, "carol"), User(shared, "alice"), User(shared, "dave")
    number = open_ticket(carol, "/cpn support mes variables CI ont disparu --project gamma")
    mine = carol.run("/cpn ticket list")["text"]
    assert mine.startswith("#### Tickets")
    assert f"- 🆕 #{number} — nouveau — @carol : mes variables CI ont disparu" in mine
    assert f"#{number} " not in dave.run("/cpn ticket list")["text"]
    assert f"#{number} — nouveau — @carol" in alice.run("/cpn ticket list")["text"]  # staff: every open ticket

    shown_card = carol.run(f"/cpn ticket show {number}")["attachments"][0]
    assert shown_card["title"] == f"🆕 Ticket n°{number} — nouveau"
    assert dave.run(f"/cpn ticket show {number}")["text"] == f"Pas de ticket n°{number} que vous puissiez voir."
    assert dave.run(f"/cpn ticket close {number}")["text"] == f"Pas de ticket n°{number} que vous puissiez voir."
    assert "Pas de ticket n°99999" in alice.run("/cpn ticket show 99999")["text"]

    assert carol.run(f"/cpn ticket close {number}")["text"] == f"📁 Ticket n°{number} clos."
    card = support_card(shared, number, "clos")
    assert buttons(card) == {}
    reply_in(shared, card["id"], f"📁 Ticket n°{number} clos par @carol")  # the platform team is told
    assert f"#{number} " not in alice.run("/cpn ticket list")["text"]
    assert f"- 📁 #{number} — clos" in carol.run("/cpn ticket list")["text"]
    # A closed ticket's threads are quiet: nothing is relayed any more.
    root = reporter_root(shared, number)
    alice.say("Toujours besoin d'aide ?", channel="support-cpn", root_id=card["id"])
    carol.say("@cpn-bot comment définir une variable CI ?", root_id=root["id"])
    reply_in(shared, root["id"], "📘")  # answered as a question, not relayed
    shared.wait_idle()
    assert not [p for p in bot_replies(shared, root["id"]) if "Toujours besoin" in p["message"]]
    assert not [p for p in bot_replies(shared, card["id"]) if "variable CI" in p["message"]]


def test_a_ticket_the_platform_team_closes_is_announced_in_the_reporters_thread(shared: World) -> None:
    bob, alice = User(shared, "bob"), User(shared, "alice")
    number = open_ticket(bob, "/cpn support doublon du ticket précédent, à fermer")
    root = reporter_root(shared, number)
    assert alice.run(f"/cpn ticket close {number}")["text"] == f"📁 Ticket n°{number} clos."
    reply_in(shared, root["id"], f"📁 Ticket n°{number} clos par @alice")
    assert ticket_row(shared, number)["status"] == "closed"


def test_mentions_and_links_in_a_ticket_are_shown_inert_everywhere(shared: World) -> None:
    bob, alice = User(shared, "bob"), User(shared, "alice")
    number = open_ticket(bob, f"/cpn support {INJECTION} ça ne marche pas")
    card = support_card(shared, number, "nouveau")
    root = reporter_root(shared, number)
    alice.say(f"Regardez {INJECTION}", channel="support-cpn", root_id=card["id"])
    relayed = reply_in(shared, root["id"], "(équipe plateforme)")
    bob.say(f"Voici {INJECTION}", root_id=root["id"])
    back = reply_in(shared, card["id"], "💬 @bob")
    for text in (
        shown(card),
        root["message"],
        relayed["message"],
        back["message"],
        bob.run("/cpn ticket list")["text"],
        text_of(bob.run(f"/cpn ticket show {number}")),
    ):
        assert "`@all`" in text
        assert_inert(text)


def test_a_restarted_bot_still_knows_its_tickets_and_their_threads(tmp_path: Path) -> None:
    world = World(tmp_path, timings=Timings.fast(), bot_in_process=False).start()
    env = dict(os.environ, NO_PROXY="127.0.0.1,localhost")
    command = world.serve_command()

    def serve() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: listening(world) and answering(world), timeout=20, what="the bot process")
        return process

    bot = serve()
    try:
        bob, alice = User(world, "bob"), User(world, "alice")
        number = open_ticket(bob, "/cpn support mon déploiement en prod est bloqué --project alpha")
        card = support_card(world, number, "nouveau")
        root = reporter_root(world, number)
        bot.send_signal(signal.SIGTERM)
        bot.wait(10)
        wait_for(lambda: not listening(world), what="the bot gone")
        bot = serve()
        assert press(world, alice, card, "Prendre") == ""  # a button signed before the restart
        reply_in(world, root["id"], f"Votre ticket n°{number} est pris en charge par @alice")
        alice.say("Je regarde ArgoCD", channel="support-cpn", root_id=card["id"])
        reply_in(world, root["id"], "💬 @alice (équipe plateforme) : Je regarde ArgoCD")
        bob.say("Merci, ça repart", root_id=root["id"])
        reply_in(world, card["id"], "💬 @bob : Merci, ça repart")
        assert f"#{number} — pris en charge — @bob" in alice.run("/cpn ticket list")["text"]
    finally:
        bot.send_signal(signal.SIGTERM)
        bot.wait(10)
        world.stop()


def test_a_ticket_from_a_channel_the_bot_is_not_in_is_refused_with_the_way_out(shared: World) -> None:
    before = shared.store().count("tickets")
    answer = User(shared, "bob").run("/cpn support mon appli ne démarre pas", channel="equipe-beta")
    assert answer["text"] == (
        "⚠️ Le bot n'est pas membre de ce canal : ajoutez @cpn-bot au canal pour que ses messages y arrivent."
    )
    assert shared.store().count("tickets") == before


def test_no_reminder_before_the_configured_delay(shared: World) -> None:
    number = open_ticket(User(shared, "dave"), "/cpn support la console affiche une page blanche")
    card = support_card(shared, number)
    run_job(shared, remind)
    shared.wait_idle()
    assert not [p for p in bot_replies(shared, card["id"]) if "⏰" in p["message"]]


def test_tickets_nobody_took_are_brought_up_in_the_support_channel(make_world: Callable[..., World]) -> None:
    world = make_world(config_overrides={"support": {"ticket_reminder_minutes": 0.0001}})  # 6 ms
    bot = world.bot
    assert bot is not None

    async def stop_scheduled_reminders() -> None:
        # With such a delay the scheduler would run the job every 1.5 µs: the test runs it itself.
        bot.scheduler.scheduler.remove_job("support.reminders")

    world.run(stop_scheduled_reminders())
    bob, alice = User(world, "bob"), User(world, "alice")
    waiting = open_ticket(bob, "/cpn support personne ne me répond")
    taken = open_ticket(bob, "/cpn support le build est lent")
    resolved = open_ticket(bob, "/cpn support merci de supprimer mon projet de test")
    press(world, alice, support_card(world, taken), "Prendre")
    press(world, alice, support_card(world, resolved), "Résolu")
    time.sleep(0.01)  # the 6 ms delay
    run_job(world, remind)
    world.wait_idle()
    cards = {n: support_card(world, n) for n in (waiting, taken, resolved)}
    reminders = {
        n: [p["message"] for p in bot_replies(world, c["id"]) if "⏰" in p["message"]] for n, c in cards.items()
    }
    assert reminders == {
        waiting: [f"⏰ Le ticket n°{waiting} attend toujours quelqu'un pour le prendre en charge."],
        taken: [],
        resolved: [],
    }
    assert ticket_row(world, waiting)["reminded_at"]


# -- the platform's health --------------------------------------------------------------------------


def health_lines(world: World) -> dict[str, str]:
    card = User(world, "dave").run("/cpn services")["attachments"][0]
    assert card["title"] == "État des services de la plateforme"
    services, _, hint = card["text"].partition("\n\n")
    # Below the services, while one is not OK, what to do: retry later, tell the platform team.
    assert ("`/cpn support`" in hint) == any(not line.startswith("🟢") for line in services.splitlines())
    lines = {}
    for line in services.splitlines():
        found = re.match(r"^(\S+) \*\*(\w+)\*\* : (.+)$", line)
        assert found, line
        icon, service, rest = found.groups()
        latency = re.search(r" \((\d+) ms\)", rest)
        assert latency, line
        lines[service] = f"{icon} {rest.replace(latency.group(0), '')}"
    assert sorted(lines) == sorted(SERVICES)
    return lines


def test_a_healthy_platform_shows_every_service_ok(make_world: Callable[..., World]) -> None:
    assert health_lines(make_world()) == dict.fromkeys(SERVICES, "🟢 OK")


def test_each_service_is_shown_ok_degraded_failing_or_unknown(make_world: Callable[..., World]) -> None:
    world = make_world()
    world.states["gitlab"].unhealthy = {"gitaly_check"}
    world.states["vault"].sealed = True
    world.states["sonarqube"].set_health("YELLOW")
    world.states["nexus"].writable = False
    world.states["quay"].set_service_health("database", False)
    world.states["argocd"].faults.down = True
    assert health_lines(world) == {
        "ArgoCD": "🔴 En échec — healthz: HTTP 503",
        "GitLab": "🔴 En échec — readiness: gitaly\\_check",  # a core component: a failure, named
        "Mattermost": "🟢 OK",
        "Nexus": "🟠 Dégradé — en lecture seule",
        "Quay": "🔴 En échec — health/instance: HTTP 503",
        "SonarQube": "🟠 Dégradé — health YELLOW",
        "Vault": "🔴 En échec — scellé",  # the probes' words in French
    }
    # An answer the probe cannot read (a maintenance page behind the proxy): unknown, and the others still shown.
    world.states["sonarqube"].faults.fail("GET /api/system/health", 200, body="maintenance")
    lines = health_lines(world)
    assert lines["SonarQube"] == "⚪ Inconnu — réponse inattendue"
    assert lines["Vault"] == "🔴 En échec — scellé"


def test_the_health_job_announces_a_change_once_in_the_support_channel(make_world: Callable[..., World]) -> None:
    world = make_world(config_overrides={"support": {"health_poll_seconds": 0}})  # the test runs the job

    def announcements() -> list[str]:
        world.wait_idle()
        return [p["message"] for p in channel_posts(world, "support-cpn") if p["user_id"] == bot_id(world)]

    run_job(world, refresh_health)
    assert announcements() == []  # the first look is no change
    world.states["vault"].sealed = True
    world.states["sonarqube"].set_health("RED")
    for _ in range(2):
        run_job(world, refresh_health)
    health_lines(world)  # /cpn services sees the same states: nothing new to say
    assert sorted(announcements()) == ["🔴 SonarQube : OK → En échec — health RED", "🔴 Vault : OK → En échec — scellé"]
    world.states["vault"].sealed = False
    for _ in range(2):
        run_job(world, refresh_health)
    assert announcements()[-1] == "🟢 Vault : En échec → OK" and len(announcements()) == 3
    stored = {r["service"]: r["health"] for r in world.store().db.table("service_health").rows}
    assert stored["Vault"] == "ok" and stored["SonarQube"] == "failing"
