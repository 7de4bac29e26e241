"""Webhook text in posts: shown as typed but inert, and links only ever to the platform's own GitLab."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from bot.sandbox.world import World
from tests.integration.test_pipelines import as_repo, fixture, project_secret, send
from tests.support.mattermost import User, channel_posts

HOSTILE = "@all <!channel> @here ~town-square ![x](http://evil.example/img.png) [clic](javascript:alert(1))"
EVIL_URL = "javascript:alert(1)"
FOREIGN = "https://evil.example/forge/projects/alpha/api"

_CODE = re.compile(r"`[^`]*`")  # Mattermost notifies no one for a mention in a code span
_MENTION = re.compile(r"(?<![\w\\])@(all|channel|here)\b|<!channel>|<!here>|<!everyone>")
_LINK = re.compile(r"(?<!\\)\[(?:[^\]\\]|\\.)*(?<!\\)\]\(([^)]*)\)")
_IMAGE = re.compile(r"(?<!\\)!(?<!\\)\[")


def live_markup(text: str, gitlab: str) -> list[str]:
    """What a post's text would do in Mattermost: live mentions, images, links off the platform."""
    bare = _CODE.sub("", text)
    found = [m.group(0) for m in _MENTION.finditer(bare)]
    found += ["image" for _ in _IMAGE.finditer(bare)]
    found += [m.group(1) for m in _LINK.finditer(bare) if not m.group(1).startswith(gitlab + "/")]
    return found


def post_texts(world: World, channel: str) -> list[tuple[str, str]]:
    """(text, link) of every post of the channel: its message and each attachment's parts."""
    found = []
    for post in channel_posts(world, channel):
        found.append((post["message"], ""))
        for card in (post.get("props") or {}).get("attachments") or []:
            for part in ("title", "text", "fallback", "pretext"):
                found.append((str(card.get(part) or ""), str(card.get("title_link") or "")))
    return found


@pytest.fixture
def subscribed(make_world: Callable[..., World]) -> World:
    world = make_world()
    bob = User(world, "bob")
    bob.run("/cpn project create alpha")
    world.wait_idle(30)
    bob.run("/cpn repo add alpha api")
    world.wait_idle(30)
    bob.run("/cpn subscribe alpha --events pipeline,push,mr")
    world.wait_idle(30)
    return world


def hostile_events() -> list[tuple[str, dict[str, Any]]]:
    pipeline = as_repo(fixture("gitlab_pipeline_event.json"))
    pipeline["project"]["web_url"] = FOREIGN
    attrs = pipeline["object_attributes"]
    attrs.update({"id": 4242, "status": "failed", "ref": HOSTILE, "url": EVIL_URL, "stages": [HOSTILE, "test"]})
    pipeline["commit"].update({"title": HOSTILE, "message": HOSTILE, "author": {"name": HOSTILE}})
    pipeline["builds"] = [
        {"id": 91, "stage": HOSTILE, "name": HOSTILE, "status": "failed", "failure_reason": HOSTILE},
        {"id": 92, "stage": "test", "name": "unit", "status": "failed", "failure_reason": "script_failure"},
    ]
    job = as_repo(fixture("gitlab_job_event.json"))
    job.update({"pipeline_id": 4242, "build_id": 93, "build_name": HOSTILE, "build_stage": HOSTILE})
    job["project"]["web_url"] = FOREIGN
    job["repository"]["homepage"] = FOREIGN
    push = as_repo(fixture("gitlab_push_event.json"))
    push.update({"ref": "refs/heads/main", "user_name": HOSTILE})
    merge_request = {
        "object_kind": "merge_request",
        "user": {"name": HOSTILE, "username": "mallory"},
        "project": as_repo({})["project"],
        "object_attributes": {
            "iid": 7,
            "title": HOSTILE,
            "url": EVIL_URL,
            "action": "@all",
            "source_branch": HOSTILE,
            "target_branch": "main",
        },
    }
    return [("Pipeline Hook", pipeline), ("Job Hook", job), ("Push Hook", push), ("Merge Request Hook", merge_request)]


def test_webhook_strings_reach_posts_inert_and_links_only_to_the_configured_gitlab(subscribed: World) -> None:
    assert subscribed.bot is not None and subscribed.bot.config.gitlab is not None
    gitlab = str(subscribed.bot.config.gitlab.ui_url or subscribed.bot.config.gitlab.url).rstrip("/")
    before = len(post_texts(subscribed, "equipe-alpha"))
    for event, payload in hostile_events():
        assert send(subscribed, event, payload, token=project_secret(subscribed)).status_code == 202
    subscribed.wait_idle()
    posted = post_texts(subscribed, "equipe-alpha")[before:]
    assert any("4242" in text for text, _ in posted), "the pipeline card"
    assert any("mallory" in text or "!7" in text for text, _ in posted), "the merge request line"
    for text, link in posted:
        assert live_markup(text, gitlab) == [], text
        assert link in ("", f"{gitlab}/forge/projects/alpha/api/-/pipelines/4242"), link
    assert any(f"]({gitlab}/forge/projects/alpha/api/-/merge_requests/7)" in text for text, _ in posted)
    assert not any("evil.example" in link or "javascript:" in link for _, link in posted)
