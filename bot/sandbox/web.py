"""The sandbox's web view (``cpn-bot sandbox --web``): the Mattermost emulator's page, in the catalog's words.

The page itself lives with the emulator (``services/emulators/mattermost_web.py``), which knows
nothing of the bot; the sandbox turns it on and hands it the ``[web]`` texts of its language.
"""

from __future__ import annotations

from bot.i18n import LANGS, catalog
from bot.sandbox.world import World
from services.emulators import mattermost_web


def web_texts(language: str) -> dict[str, str]:
    lang = next((known for known in LANGS if known == language), "fr")
    return {key.removeprefix("web."): text for key, text in catalog(lang).items() if key.startswith("web.")}


def start_web(world: World) -> str:
    """Turn the web view of the world's Mattermost on; its URL, the key in the fragment."""
    key = mattermost_web.enable(world.states["mattermost"], web_texts(world.language), world.language)
    return mattermost_web.web_url(world.servers["mattermost"].url, key)
