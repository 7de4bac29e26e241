"""The sandbox's web view in a real browser (Debian's chromium): what people see and do there.

One browser for the session, one world for the module. Screenshots of the main cards are saved
under tests/artifacts/web/ (ignored by git) so that a change in rendering can be looked at.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.sandbox.web import start_web
from bot.sandbox.world import Timings, World
from tests.conftest import wait_for
from tests.support import browser as chromium
from tests.support import platform as svc

pytestmark = pytest.mark.skipif(bool(chromium.missing()), reason=chromium.missing() or "")

PASSWORD = "Tr0ub4dor&3-web-only"


@pytest.fixture(scope="session")
def browser() -> Iterator[chromium.Browser]:
    session = chromium.Browser()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    started = World.create(timings=Timings.fast()).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def web_url(world: World) -> str:
    return start_web(world)


@pytest.fixture
def page(browser: chromium.Browser, web_url: str) -> chromium.Browser:
    """The web view as bob in ~equipe-alpha, freshly loaded."""
    browser.driver.set_window_size(1280, 800)
    browser.open(f"{web_url}&as=bob&channel=equipe-alpha")
    return browser


def api(world: World, username: str, method: str, path: str, body: Any = None) -> Any:
    answer = httpx.request(
        method,
        f"{world.servers['mattermost'].url}/api/v4{path}",
        json=body,
        headers={"Authorization": f"Bearer {world.users[username].token}"},
    )
    answer.raise_for_status()
    return answer.json()


def post_as(world: World, username: str, message: str, channel: str = "equipe-alpha", **props: Any) -> Any:
    return api(
        world, username, "POST", "/posts", {"channel_id": world.channels[channel], "message": message, "props": props}
    )


def type_in(page: chromium.Browser, text: str, box: str = "composer-input") -> None:
    from selenium.webdriver.common.keys import Keys

    field = page.driver.find_element("id", box)
    field.send_keys(text)
    field.send_keys(Keys.ENTER)


def post_element(page: chromium.Browser, post_id: str, where: str = "post-list") -> Any:
    return page.wait(
        lambda: page.js(f"return document.querySelector('#{where} [data-post-id=\"' + arguments[0] + '\"]')", post_id),
        what=f"post {post_id} in #{where}",
    )


def card(page: chromium.Browser, title: str) -> Any:
    """The newest attachment of the channel whose title starts with ``title``."""
    return page.js(
        "var want = arguments[0];"
        "var all = Array.from(document.querySelectorAll('#post-list .attachment__container'))"
        ".filter(function (c) { var t = c.querySelector('.attachment__title');"
        " return t && t.textContent.indexOf(want) === 0; });"
        "return all.length ? all[all.length - 1] : null;",
        title,
    )


def card_text(page: chromium.Browser, title: str) -> str:
    """The text of :func:`card`, read in the page (the element may be drawn again meanwhile)."""
    return str(
        page.js(
            "var want = arguments[0];"
            "var all = Array.from(document.querySelectorAll('#post-list .attachment__container'))"
            ".filter(function (c) { var t = c.querySelector('.attachment__title');"
            " return t && t.textContent.indexOf(want) === 0; });"
            "return all.length ? all[all.length - 1].innerText : '';",
            title,
        )
    )


def list_text(page: chromium.Browser, where: str = "post-list") -> str:
    return str(page.js("return document.getElementById(arguments[0]).innerText", where))


# -- Markdown, as Mattermost renders it, and never as markup ----------------------------------------

MARKDOWN = [
    pytest.param(
        "**gras** _italique_ ~~barré~~",
        "<p><strong>gras</strong> <em>italique</em> <del>barré</del></p>",
        id="emphasis",
    ),
    pytest.param("`a < b`", '<p><code class="markdown__code">a &lt; b</code></p>', id="code-span"),
    pytest.param(
        "```bash\nrm -rf /tmp/x && echo '<ok>'\n```",
        '<pre class="post-code"><code class="language-bash">rm -rf /tmp/x &amp;&amp; echo \'&lt;ok&gt;\'</code></pre>',
        id="code-block",
    ),
    pytest.param(
        "| Service | État |\n| --- | :---: |\n| Vault | ✅ |",
        '<div class="table-responsive"><table class="markdown__table"><thead><tr><th>Service</th>'
        '<th style="text-align: center;">État</th></tr></thead><tbody><tr><td>Vault</td>'
        '<td style="text-align: center;">✅</td></tr></tbody></table></div>',
        id="table",
    ),
    pytest.param(
        "[la doc](https://cloud-pi-native.fr/doc) et https://gitlab.com/a.git.",
        '<p><a class="markdown__link" href="https://cloud-pi-native.fr/doc" rel="noopener noreferrer" target="_blank">'
        'la doc</a> et <a class="markdown__link" href="https://gitlab.com/a.git" rel="noopener noreferrer" '
        'target="_blank">https://gitlab.com/a.git</a>.</p>',
        id="links",
    ),
    pytest.param(
        "#### Titre\n- un\n- deux\n  - trois",
        '<h4 class="markdown__heading">Titre</h4>'
        '<ul class="markdown__list"><li>un</li><li>deux<ul class="markdown__list"><li>trois</li></ul></li></ul>',
        id="heading-and-lists",
    ),
    pytest.param("ligne 1\nligne 2", "<p>ligne 1<br>ligne 2</p>", id="newline-is-a-break"),
    pytest.param("> cité", "<blockquote><p>cité</p></blockquote>", id="quote"),
    pytest.param("@bob regarde", '<p><span class="mention">@bob</span> regarde</p>', id="mention"),
    # Hostile input: shown as the text it is.
    pytest.param("<img src=x onerror=alert(1)>", "<p>&lt;img src=x onerror=alert(1)&gt;</p>", id="html-tag"),
    pytest.param("[clic](javascript:alert(1))", "<p><span>clic</span></p>", id="javascript-link"),
    pytest.param("[clic](data:text/html,<b>x</b>)", "<p><span>clic</span></p>", id="data-link"),
    pytest.param(
        '**"><script>x</script>**', '<p><strong>"&gt;&lt;script&gt;x&lt;/script&gt;</strong></p>', id="script-in-bold"
    ),
]


@pytest.mark.parametrize(("text", "html"), MARKDOWN)
def test_markdown_is_rendered_like_mattermost_and_escaped(page: chromium.Browser, text: str, html: str) -> None:
    assert page.js("return CpnMarkdown.render(arguments[0]).innerHTML", text) == html


def test_a_hostile_post_is_shown_as_text_and_runs_nothing(page: chromium.Browser, world: World) -> None:
    hostile = '<img src=x onerror="window.pwned=1"> <script>window.pwned=2</script> [x](javascript:window.pwned=3)'
    attachment = {
        "color": '#CE0500"><b>',
        "pretext": "<i>pré</i>",
        "title": "<svg onload=window.pwned=4>",
        "title_link": "javascript:window.pwned=5",
        "text": hostile,
        "fields": [{"title": "<b>champ</b>", "value": "<u>valeur</u>", "short": True}],
        "footer": "<marquee>pied</marquee>",
        "actions": [{"id": "evil", "name": "<b>bouton</b>", "type": "button", "style": 'x" onclick="1'}],
    }
    post = post_as(world, "dave", hostile, attachments=[attachment])
    shown = post_element(page, post["id"])
    assert page.js("return window.pwned") is None
    assert (
        page.js("return arguments[0].querySelectorAll('img, script, svg, b, i, u, marquee, iframe').length", shown) == 0
    )
    assert (
        page.js("return Array.from(arguments[0].querySelectorAll('a')).map(function (a) { return a.href; })", shown)
        == []
    )
    text = shown.text
    assert "<script>window.pwned=2</script>" in text and "<svg onload=window.pwned=4>" in text
    assert "<b>bouton</b>" in text and "<marquee>pied</marquee>" in text


# -- the posts, live --------------------------------------------------------------------------------


def test_posts_of_others_appear_and_their_edits_replace_them_live(page: chromium.Browser, world: World) -> None:
    post = post_as(world, "carol", "Premier jet")
    shown = post_element(page, post["id"])
    assert "Carole Petit" in shown.text and "Premier jet" in shown.text
    api(world, "carol", "PUT", f"/posts/{post['id']}/patch", {"message": "Version **finale**"})
    page.wait(
        lambda: (
            "finale" in str(page.js("return document.getElementById('post-' + arguments[0]).innerText", post["id"]))
        ),
        what="the edit",
    )
    edited = post_element(page, post["id"])
    assert "(modifié)" in edited.text and "Premier jet" not in edited.text
    api(world, "carol", "DELETE", f"/posts/{post['id']}")
    page.wait(
        lambda: not page.js("return document.getElementById('post-' + arguments[0])", post["id"]), what="the delete"
    )


def test_a_thread_opens_beside_the_channel_and_replies_stay_in_it(page: chromium.Browser, world: World) -> None:
    root = post_as(world, "dave", "Qui relit la MR ?")
    post_element(page, root["id"]).find_element("css selector", ".post__reply").click()
    page.wait(lambda: page.js("return !document.getElementById('rhs').hidden"), what="the thread")
    assert page.js("return document.activeElement.id") == "thread-input"
    type_in(page, "Moi, cet après-midi", box="thread-input")
    reply = page.wait(
        lambda: page.js(
            "return Array.from(document.querySelectorAll('#thread-list .post--reply'))"
            ".filter(function (p) { return p.textContent.indexOf('cet après-midi') !== -1; })[0]"
        ),
        what="the reply in the thread",
    )
    assert "Bob Durand" in reply.text
    assert "cet après-midi" not in list_text(page)  # collapsed reply threads
    page.wait(lambda: "1 réponse" in list_text(page), what="the reply count")
    page.screenshot("thread")
    page.driver.find_element("id", "thread-input").send_keys("\ue00c")  # Escape closes the thread
    page.wait(lambda: page.js("return document.getElementById('rhs').hidden"), what="the thread to close")


# -- the scenario of the issue ----------------------------------------------------------------------


def test_project_checklist_dialog_password_and_confirmation_in_the_browser(
    page: chromium.Browser, world: World
) -> None:
    type_in(page, "/cpn project create alpha --description 'Gestion des titres'")
    answer = page.wait(
        lambda: page.js(
            "return Array.from(document.querySelectorAll('#post-list .post--ephemeral'))"
            ".filter(function (p) { return p.textContent.indexOf('Création du projet') !== -1; })[0]"
        ),
        what="the command's ephemeral answer",
    )
    assert "(Visible uniquement par vous)" in answer.text
    # Live edits turn the checklist green: seven ✅ (six services and the status) and the green bar.
    page.wait(lambda: card_text(page, "Création du projet alpha").count("✅") == 7, what="the checklist to be ready")
    checklist = card(page, "Création du projet alpha")
    assert checklist.value_of_css_property("border-left-color") == "rgba(24, 117, 60, 1)"  # #18753C
    page.js("arguments[0].scrollIntoView()", checklist)
    page.screenshot("checklist-ready")

    type_in(page, "/cpn secret set alpha DB_PASSWORD")
    dialog = page.wait(
        lambda: page.js("var d = document.getElementById('interactive-dialog'); return d.open && d"), what="the dialog"
    )
    field = dialog.find_element("css selector", "input[name=value]")
    assert field.get_attribute("type") == "password"
    assert (
        page.js("return document.querySelector('label[for=\"' + arguments[0].id + '\"]').textContent", field)
        == "DB_PASSWORD"
    )
    assert page.js("return document.activeElement") == field
    field.send_keys(PASSWORD)
    page.screenshot("dialog-password")
    dialog.find_element("id", "dialog-submit").click()
    page.wait(lambda: page.js("return !document.getElementById('interactive-dialog').open"), what="the dialog to close")
    page.wait(
        lambda: svc.vault_secret(world, "DB_PASSWORD", mount="alpha") == {"value": PASSWORD}, what="the secret in Vault"
    )

    type_in(page, "/cpn secret delete alpha DB_PASSWORD")
    confirm = page.wait(
        lambda: page.js(
            "return Array.from(document.querySelectorAll('#post-list .post--ephemeral .action-button'))"
            ".filter(function (b) { return b.textContent === 'Confirmer'; }).pop()"
        ),
        what="the confirmation button",
    )
    assert "action-button--danger" in confirm.get_attribute("class")
    page.js("arguments[0].scrollIntoView()", confirm)
    page.screenshot("confirmation")
    confirm.click()
    page.wait(lambda: svc.vault_secret(world, "DB_PASSWORD", mount="alpha") is None, what="the secret deleted")
    page.wait(lambda: "Secret DB_PASSWORD supprimé" in list_text(page), what="the update")

    # Afterwards the password is nowhere in the page, and went over the wire once: in the dialog's submission.
    assert PASSWORD not in page.driver.page_source
    assert PASSWORD not in json.dumps(
        page.js("return Array.from(document.querySelectorAll('input, textarea')).map(function (e) { return e.value; })")
    )
    assert PASSWORD not in json.dumps(
        page.js("var s = CpnWeb.state; return {posts: s.posts, ephemeral: s.ephemeral, dialog: s.dialog}")
    )
    events = page.network()
    sent = [
        e
        for e in events
        if e["method"] == "Network.requestWillBeSent" and PASSWORD in json.dumps(e["params"]["request"])
    ]
    assert [(e["params"]["request"]["method"], e["params"]["request"]["url"].split("/api/v4")[1]) for e in sent] == [
        ("POST", "/actions/dialogs/submit")
    ]
    assert PASSWORD not in sent[0]["params"]["request"]["url"]
    frames = [e for e in events if e["method"].startswith("Network.webSocketFrame")]
    assert frames and not [f for f in frames if PASSWORD in f["params"]["response"]["payloadData"]]
    assert not [body for body in page.response_bodies() if PASSWORD in body]


# -- dialogs: every element type, and what goes to the integration ----------------------------------

DIALOG = {
    "callback_id": "web.test",
    "title": "Nouvelle base",
    "introduction_text": "Une base **PostgreSQL** pour `alpha`.",
    "submit_label": "Créer",
    "state": "opaque-state",
    "notify_on_cancel": True,
    "elements": [
        {"display_name": "Nom", "name": "name", "type": "text", "default": "alpha-db", "help_text": "Minuscules."},
        {"display_name": "Taille (Go)", "name": "size", "type": "text", "subtype": "number"},
        {"display_name": "Mot de passe", "name": "password", "type": "text", "subtype": "password"},
        {"display_name": "Notes", "name": "notes", "type": "textarea", "optional": True},
        {
            "display_name": "Version",
            "name": "version",
            "type": "select",
            "options": [{"text": "PostgreSQL 16", "value": "16"}, {"text": "PostgreSQL 17", "value": "17"}],
        },
        {
            "display_name": "Sauvegarde",
            "name": "backup",
            "type": "radio",
            "options": [{"text": "Quotidienne", "value": "daily"}, {"text": "Hebdomadaire", "value": "weekly"}],
            "default": "daily",
        },
        {"display_name": "Chiffrée", "name": "encrypted", "type": "bool", "placeholder": "Chiffrer au repos"},
    ],
}


class Integration:
    """The dialog's URL: records what the emulator posts there, answers from a queue."""

    def __init__(self) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        from services.emulators.base import EmulatorServer

        self.received: list[dict[str, Any]] = []
        self.pressed: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        routes = [Route("/dialog", self.handle, methods=["POST"]), Route("/action", self.press, methods=["POST"])]
        self.server = EmulatorServer(Starlette(routes=routes)).start()

    async def handle(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        self.received.append(await request.json())
        return JSONResponse(self.answers.pop(0) if self.answers else {})

    async def press(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        self.pressed.append(await request.json())
        return JSONResponse({"ephemeral_text": "Reçu."})


@pytest.fixture
def integration() -> Iterator[Integration]:
    served = Integration()
    try:
        yield served
    finally:
        served.server.stop()


def open_dialog(world: World, integration: Integration, username: str) -> None:
    """What an integration does with a trigger id: POST /actions/dialogs/open."""
    _, trigger_id = world.states["mattermost"].new_trigger_id(world.users[username].id)
    opened = httpx.post(
        f"{world.servers['mattermost'].url}/api/v4/actions/dialogs/open",
        json={"trigger_id": trigger_id, "url": f"{integration.server.url}/dialog", "dialog": DIALOG},
    )
    assert opened.status_code == 200, opened.text


def test_a_dialog_is_a_labelled_form_and_submits_what_mattermost_submits(
    page: chromium.Browser, world: World, integration: Integration
) -> None:
    from selenium.webdriver.support.ui import Select

    open_dialog(world, integration, "bob")
    page.wait(lambda: page.js("return document.getElementById('interactive-dialog').open"), what="the dialog")
    form = page.driver.find_element("id", "dialog-form")
    assert page.js("return document.getElementById('dialog-title').textContent") == "Nouvelle base"
    assert form.find_element("css selector", ".modal__intro strong").text == "PostgreSQL"
    kinds = page.js(
        "return Array.from(document.querySelectorAll('#dialog-body input, #dialog-body textarea, #dialog-body select'))"
        ".map(function (c) {"
        " return [c.tagName.toLowerCase(), c.type, c.labels.length > 0 || !!c.closest('fieldset')]; })"
    )
    assert kinds == [
        ["input", "text", True],
        ["input", "number", True],
        ["input", "password", True],
        ["textarea", "textarea", True],
        ["select", "select-one", True],
        ["input", "radio", True],
        ["input", "radio", True],
        ["input", "checkbox", True],
    ]
    # Required fields are checked before anything is sent, as the webapp does.
    page.driver.find_element("id", "dialog-submit").click()
    assert "Ce champ est requis." in form.text and integration.received == []
    form.find_element("css selector", "input[name=size]").send_keys("20")
    form.find_element("css selector", "input[name=password]").send_keys("pg-secret")
    Select(form.find_element("css selector", "select[name=version]")).select_by_value("17")
    form.find_element("css selector", "input[value=weekly]").click()
    form.find_element("css selector", "input[name=encrypted]").click()
    page.screenshot("dialog-elements")
    integration.answers.append({"errors": {"name": "Ce nom est déjà pris."}})
    page.driver.find_element("id", "dialog-submit").click()
    page.wait(lambda: "Ce nom est déjà pris." in form.text, what="the integration's error beside its field")
    assert page.js("return document.getElementById('interactive-dialog').open")
    name = form.find_element("css selector", "input[name=name]")
    assert name.get_attribute("aria-invalid") == "true"
    name.clear()
    name.send_keys("alpha-db2")
    page.driver.find_element("id", "dialog-submit").click()
    page.wait(lambda: page.js("return !document.getElementById('interactive-dialog').open"), what="the dialog to close")

    first, second = integration.received
    assert first["submission"]["name"] == "alpha-db"  # the default, refused by the integration
    assert second["submission"] == {
        "name": "alpha-db2",
        "size": 20,
        "password": "pg-secret",
        "version": "17",
        "backup": "weekly",
        "encrypted": True,
    }
    assert second["callback_id"] == "web.test" and second["state"] == "opaque-state"
    assert second["user_id"] == world.users["bob"].id and second["channel_id"] == world.channels["equipe-alpha"]
    assert second["type"] == "dialog_submission" and second["cancelled"] is False
    sent = [
        json.loads(e["params"]["request"]["postData"])
        for e in page.network()
        if e["method"] == "Network.requestWillBeSent"
        and e["params"]["request"]["url"].endswith("/actions/dialogs/submit")
    ]
    assert set(sent[-1]) == {
        "url",
        "callback_id",
        "state",
        "submission",
        "user_id",
        "channel_id",
        "team_id",
        "cancelled",
    }


def test_cancelling_a_dialog_that_asks_to_know_tells_its_integration(
    page: chromium.Browser, world: World, integration: Integration
) -> None:
    from selenium.webdriver.common.keys import Keys

    open_dialog(world, integration, "bob")
    field = page.wait(
        lambda: page.js("return document.querySelector('#dialog-body input[name=password]')"), what="the dialog"
    )
    field.send_keys("never-sent")
    page.js("return document.activeElement").send_keys(Keys.ESCAPE)
    page.wait(lambda: integration.received, what="the cancellation")
    assert integration.received[0]["cancelled"] is True and integration.received[0]["submission"] == {}
    page.wait(lambda: page.js("return !document.getElementById('interactive-dialog').open"), what="the dialog to close")
    assert "never-sent" not in page.driver.page_source


# -- who speaks, the keyboard, a narrow window ------------------------------------------------------


def test_the_user_picker_speaks_and_sees_as_the_chosen_person(page: chromium.Browser, world: World) -> None:
    from selenium.webdriver.support.ui import Select

    picker = page.driver.find_element("id", "user-picker")
    assert page.js("return arguments[0].labels[0].querySelector('span').textContent", picker) == "Vous êtes"
    Select(picker).select_by_value("carol")
    page.wait(lambda: "as=carol" in page.driver.current_url, what="the choice kept in the address")
    page.wait(lambda: page.js("return document.getElementById('channel-name').textContent"), what="the channel")
    type_in(page, "Bonjour, ici Carole")
    mm = world.states["mattermost"]
    sent = wait_for(
        lambda: [p for p in mm.channel_posts(world.channels["equipe-alpha"]) if p["message"] == "Bonjour, ici Carole"],
        what="the message in the emulator",
    )
    assert sent[0]["user_id"] == world.users["carol"].id
    assert "Carole Petit" in post_element(page, sent[0]["id"]).text
    # What the bot tells one person is shown to that person only.
    type_in(page, "/cpn aide")
    page.wait(lambda: page.js("return document.querySelector('#post-list .post--ephemeral')"), what="carol's answer")
    Select(page.driver.find_element("id", "user-picker")).select_by_value("bob")
    page.wait(lambda: "as=bob" in page.driver.current_url, what="back to bob")
    post_element(page, sent[0]["id"])
    assert not page.js("return document.querySelector('#post-list .post--ephemeral')")


def _unnamed_controls(page: chromium.Browser) -> list[str]:
    """The visible controls without an accessible name (label, aria-label(ledby), text or title)."""
    return list(
        page.js(
            "function named(e) {"
            " var by = (e.getAttribute('aria-labelledby') || '').split(' ').map(function (i) {"
            "  var n = document.getElementById(i); return n ? n.textContent : ''; }).join('');"
            " var labels = e.labels ? Array.from(e.labels).map(function (l) { return l.textContent; }).join('') : '';"
            " var own = /^(BUTTON|A)$/.test(e.tagName) ? e.textContent : '';"
            " return (by + labels + own + (e.getAttribute('aria-label') || '') + (e.title || '')).trim() !== ''; }"
            "return Array.from(document.querySelectorAll('button, select, textarea, input, a[href], [tabindex]'))"
            ".filter(function (e) { return e.getClientRects().length > 0 && !named(e); })"
            ".map(function (e) { return e.outerHTML.slice(0, 160); })"
        )
    )


def test_everything_is_named_and_works_from_the_keyboard(
    page: chromium.Browser, world: World, integration: Integration
) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    def key(*keys: str) -> None:
        ActionChains(page.driver).send_keys(*keys).perform()

    def focused() -> Any:
        return page.js("return document.activeElement")

    action = {"url": f"{integration.server.url}/action", "context": {"what": "clavier"}}
    post = post_as(
        world,
        "dave",
        "Une carte à bouton",
        attachments=[{"title": "Au clavier", "actions": [{"id": "ok", "name": "Valider", "integration": action}]}],
    )
    post_element(page, post["id"])
    assert _unnamed_controls(page) == []
    # First Tab: the skip link, which leads to the message box without leaving the page's address.
    page.js("document.activeElement.blur()")
    key(Keys.TAB)
    assert "skip-link" in focused().get_attribute("class")
    key(Keys.ENTER)
    assert focused().get_attribute("id") == "composer-input"
    assert "key=" in page.driver.current_url and "as=bob" in page.driver.current_url
    key("Écrit au clavier", Keys.ENTER)
    mm = world.states["mattermost"]
    wait_for(
        lambda: [p for p in mm.channel_posts(world.channels["equipe-alpha"]) if p["message"] == "Écrit au clavier"],
        what="the message sent with Enter",
    )
    # Tab reaches the card's button (every control is in the tab order), Enter presses it.
    button = page.js(
        "return document.querySelector('[data-post-id=\"' + arguments[0] + '\"] .action-button')", post["id"]
    )
    for _ in range(80):
        if focused() == button:
            break
        key(Keys.TAB)
    assert focused() == button, "the card's button is not reachable with Tab"
    key(Keys.ENTER)
    pressed = wait_for(lambda: integration.pressed, what="the press")
    assert pressed[0]["user_id"] == world.users["bob"].id and pressed[0]["context"] == {"what": "clavier"}
    wait_for(
        lambda: [e for e in mm.ephemeral if e["user_id"] == world.users["bob"].id and e["post"]["message"] == "Reçu."],
        what="the integration's answer to bob",
    )
    # The post's reply button opens its thread with the focus in it; Escape closes it and comes back.
    reply = page.js("return document.querySelector('[data-post-id=\"' + arguments[0] + '\"] .post__reply')", post["id"])
    page.js("arguments[0].focus()", reply)
    key(Keys.ENTER)
    page.wait(lambda: page.js("return !document.getElementById('rhs').hidden"), what="the thread")
    assert focused().get_attribute("id") == "thread-input"
    assert _unnamed_controls(page) == []
    key(Keys.ESCAPE)
    page.wait(lambda: page.js("return document.getElementById('rhs').hidden"), what="the thread to close")
    assert focused().get_attribute("id") == "composer-input"


@pytest.mark.parametrize("size", [(400, 800), (1280, 800)], ids=["narrow", "wide"])
def test_the_page_reads_without_sideways_scrolling(page: chromium.Browser, world: World, size: tuple[int, int]) -> None:
    page.driver.set_window_size(*size)
    wide = "https://gitlab.interieur.gouv.fr/forge/projects/etatcivil/" + "un-chemin-tres-long/" * 8 + "fichier.yaml"
    table = "| Image | Critiques | Élevées | Moyennes | Faibles | Corrigeables |\n|---|---|---|---|---|---|\n"
    table += "| registry.example/etatcivil/api:1.4.2@sha256:0123456789ab | 2 | 5 | 11 | 3 | 9 |"
    post = post_as(
        world,
        "dave",
        f"Regardez {wide}\n\n{table}",
        attachments=[
            {
                "color": "#D0021B",
                "title": "Analyse Trivy de api",
                "text": "`" + "x" * 200 + "`",
                "fields": [
                    {"title": "Image", "value": wide, "short": True},
                    {"title": "Critiques", "value": "2", "short": True},
                ],
                "actions": [{"id": "a", "name": "Voir le détail", "integration": {"url": "http://127.0.0.1:9/x"}}],
            }
        ],
    )
    shown = post_element(page, post["id"])
    page.js("arguments[0].scrollIntoView()", shown)
    viewport, scrolled = page.js("return [document.documentElement.clientWidth, document.documentElement.scrollWidth]")
    assert viewport <= size[0] and scrolled <= viewport, (viewport, scrolled)
    # Nothing sticks out of the window: the post, its card, the box to type in and the user picker.
    for selector in (f'[data-post-id="{post["id"]}"]', "#composer-input", "#user-picker", ".attachment__container"):
        right = page.js(
            "var all = document.querySelectorAll(arguments[0]); var e = all[all.length - 1];"
            " return e.getBoundingClientRect().right",
            selector,
        )
        assert right <= viewport + 0.5, (selector, right, viewport)
    page.screenshot(f"window-{size[0]}x{size[1]}")
