"""The README's picture: the sandbox's web view beside its terminal chat, one project created.

``make screenshot`` runs it: a sandbox (fast timings), bob types ``/cpn project create alpha`` in
the terminal chat (colours on, as a terminal shows them), and once the checklist card is ready a
real Chromium (the browser tests' one) photographs one page holding the web view (as bob, in
``equipe-alpha``) on the left and the chat's output, its ANSI colours turned into HTML, on the
right. The picture is written to ``docs/web-view.png``; nothing in it is drawn by hand.
"""

from __future__ import annotations

import argparse
import html
import io
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.sandbox.chat import Chat  # noqa: E402
from bot.sandbox.terminal import Style  # noqa: E402
from bot.sandbox.web import start_web  # noqa: E402
from bot.sandbox.world import Timings, World  # noqa: E402
from tests.support.browser import Browser, missing  # noqa: E402

COMMAND = "/cpn project create alpha"
CARD_TITLE = "Création du projet alpha"
READY_MARKS = 7  # six services and the status, all ✅
WIDTH, WEB_WIDTH, HEIGHT = 1600, 960, 860

_SGR = re.compile(r"\x1b\[([0-9;]*)m")
# The terminal's 16 colours, as a dark terminal theme draws them (codes 30–37, 90–97).
_BASIC = ["#1e1e1e", "#e06c75", "#98c379", "#e5c07b", "#61afef", "#c678dd", "#56b6c2", "#dcdfe4"]


def ansi_to_html(text: str) -> str:
    """The terminal's text with its SGR codes (bold, dim, italic, underline, colours) as spans."""
    out: list[str] = []
    style: dict[str, str] = {}
    position = 0
    for match in _SGR.finditer(text):
        out.append(_span(text[position : match.start()], style))
        position = match.end()
        codes = [int(c) for c in match.group(1).split(";") if c] or [0]
        while codes:
            code = codes.pop(0)
            if code == 0:
                style = {}
            elif code == 1:
                style["font-weight"] = "bold"
            elif code == 2:
                style["opacity"] = "0.65"
            elif code == 3:
                style["font-style"] = "italic"
            elif code == 4:
                style["text-decoration"] = "underline"
            elif 30 <= code <= 37 or 90 <= code <= 97:
                style["color"] = _BASIC[code % 10]
            elif code == 38 and codes[:1] == [2] and len(codes) >= 4:
                r, g, b = codes[1:4]
                del codes[:4]
                style["color"] = f"rgb({r},{g},{b})"
            elif code == 38 and codes[:1] == [5] and len(codes) >= 2:
                del codes[:2]  # 256 colours: not drawn (the chat is run in truecolor)
    out.append(_span(text[position:], style))
    return "".join(out)


def _span(text: str, style: dict[str, str]) -> str:
    if not text:
        return ""
    escaped = html.escape(text)
    if not style:
        return escaped
    css = ";".join(f"{k}:{v}" for k, v in style.items())
    return f'<span style="{css}">{escaped}</span>'


def page(web_png: str, terminal_html: str) -> str:
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>cpn-bot</title>
<style>
  body {{ margin: 0; display: flex; height: 100vh; background: #2b2b2b; font-family: sans-serif; }}
  img {{ flex: 0 0 auto; height: 100vh; }}
  .terminal {{ flex: 1; display: flex; flex-direction: column; background: #1e1e1e; color: #dcdfe4; }}
  .bar {{ padding: 6px 12px; background: #333; color: #bbb; font-size: 13px; }}
  .screen {{ flex: 1; overflow: hidden; display: flex; flex-direction: column; justify-content: flex-end; }}
  pre {{ margin: 0; padding: 10px 12px; font: 13px/1.35 "DejaVu Sans Mono", monospace; white-space: pre-wrap; }}
</style></head>
<body>
  <img src="data:image/png;base64,{web_png}" alt="web view">
  <div class="terminal"><div class="bar">make run</div><div class="screen"><pre>{terminal_html}</pre></div></div>
</body></html>
"""


def _card_ready(world: World) -> bool:
    mm = world.states["mattermost"]
    posts = mm.channel_posts(world.channels["equipe-alpha"])
    return any(CARD_TITLE in str(p) and str(p).count("✅") >= READY_MARKS and not p.get("root_id") for p in posts)


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def _viewport(browser: Browser, width: int, height: int) -> None:
    """The page's own size, exactly (a window's size includes what a headless window lacks)."""
    metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
    browser.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "web-view.png")
    args = parser.parse_args(argv)
    why = missing()
    if why:
        print(f"no screenshot: {why}", file=sys.stderr)
        return 1
    world = World.create(timings=Timings.fast()).start()
    browser: Browser | None = None
    try:
        web_url = start_web(world)
        out = io.StringIO()
        script = [COMMAND]

        def typed(prompt: str) -> str:
            if script:
                return script.pop(0)
            _wait(lambda: _card_ready(world), 30, "the checklist card to be ready")
            # The chat prints the card's last edit when its websocket brings it.
            _wait(lambda: "Projet prêt" in out.getvalue(), 10, "the chat to show the card ready")
            raise EOFError

        chat = Chat(
            world.state_file(),
            "bob",
            "equipe-alpha",
            input_fn=typed,
            output=out,
            style=Style(color=True, truecolor=True),
            interactive=False,
            world=world,
        )
        try:
            chat.run()
        finally:
            chat.close()  # its websocket, before the sandbox stops
        terminal = out.getvalue()
        browser = Browser()
        # The web view first, alone (it refuses to be framed: frame-ancestors 'none'), as bob.
        _viewport(browser, WEB_WIDTH, HEIGHT)
        browser.open(f"{web_url}&as=bob&channel=equipe-alpha")
        browser.wait(
            lambda: browser.js("return document.body.innerText").count("✅") >= READY_MARKS,
            what="the card in the web view",
        )
        time.sleep(0.3)  # fonts and the last layout
        web_png = browser.driver.get_screenshot_as_base64()
        # Then one page: that picture on the left, the terminal on the right.
        with tempfile.TemporaryDirectory(prefix="cpn-screenshot-") as tmp:
            composed = Path(tmp) / "readme.html"
            composed.write_text(page(web_png, ansi_to_html(terminal)), encoding="utf-8")
            _viewport(browser, WIDTH, HEIGHT)
            browser.driver.get(composed.as_uri())
            time.sleep(0.3)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            browser.driver.save_screenshot(str(args.output))
        print(f"written {args.output}")
        return 0
    finally:
        if browser is not None:
            browser.close()
        world.stop()


if __name__ == "__main__":
    raise SystemExit(main())
