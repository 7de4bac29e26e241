"""The README's picture draws the terminal as the chat coloured it."""

from __future__ import annotations

from bot.sandbox.terminal import Style, render_post
from tools.readme_screenshot import ansi_to_html


def test_colours_and_weights_become_spans_and_text_is_escaped() -> None:
    text = "\x1b[1mgras\x1b[0m <b>&</b> \x1b[38;2;24;117;60m▌\x1b[0m \x1b[2m#2\x1b[0m \x1b[36malpha\x1b[0m"
    assert ansi_to_html(text) == (
        '<span style="font-weight:bold">gras</span> &lt;b&gt;&amp;&lt;/b&gt; '
        '<span style="color:rgb(24,117,60)">▌</span> <span style="opacity:0.65">#2</span> '
        '<span style="color:#56b6c2">alpha</span>'
    )


def test_a_rendered_card_loses_no_character() -> None:
    post = {"id": "p", "message": "**Création** du projet `alpha`", "props": {}}
    ansi = render_post(post, author="@cpn-bot", style=Style(color=True, truecolor=True))
    assert "\x1b" not in ansi_to_html(ansi)
    assert "Création" in ansi_to_html(ansi) and "alpha" in ansi_to_html(ansi)
