"""Identifier shapes checked before an identifier is used in a URL path or a query.

A ``user_id`` from the slash form reaches Mattermost API paths (``/users/<id>``): ``../system/ping``
would be fetched with the bot's token. Every id is checked against the real server's shape first.
"""

from __future__ import annotations

import re

# mattermost/mattermost:server/public/model/utils.go — NewId() is 26 characters of lowercase base32
# (a-z, 0-9); IsValidId() requires length 26 and letters or digits only.
_MATTERMOST_ID = re.compile(r"[a-z0-9]{26}")


def is_mattermost_id(value: object) -> bool:
    """True for a well-formed Mattermost id (user, channel, team, post)."""
    return isinstance(value, str) and _MATTERMOST_ID.fullmatch(value) is not None
