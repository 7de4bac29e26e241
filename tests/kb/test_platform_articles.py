"""Articles that depend on the platform's setup say what this platform has: its registry, its addresses,
its control mode. The articles of ``kb/`` carry tags (``{{registry}}``, ``{{if registry=harbor}}…{{end}}``)
rendered from the configuration by a pure function."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.knowledge import (
    TEMPLATE_DEFAULTS,
    TEMPLATE_NAMES,
    Article,
    ArticleError,
    load_articles,
    placeholders,
    render_template,
)

KB = Path(__file__).resolve().parents[2] / "kb"

HARBOR = {"registry": "Harbor", "registry.host": "harbor.cpn.example", "url.registry": "https://harbor.cpn.example"}
QUAY = {"registry": "Quay", "registry.host": "quay.cpn.example", "url.registry": "https://quay.cpn.example"}
# The product, not the public registry quay.io that Kyverno lets images come from.
NAMES = {"Harbor": re.compile(r"\bharbor\b", re.IGNORECASE), "Quay": re.compile(r"\bquay\b(?!\.io)", re.IGNORECASE)}


def everything(article: Article) -> str:
    return "\n".join([article.title, *article.tags, *article.commands, article.summary, article.body])


@pytest.mark.parametrize("control", ["direct", "console"])
@pytest.mark.parametrize(("values", "other"), [(HARBOR, "Quay"), (QUAY, "Harbor")], ids=["harbor", "quay"])
def test_a_platform_never_names_the_other_registry(values: dict[str, str], other: str, control: str) -> None:
    articles = {a.id: a for a in load_articles(KB, {**values, "control": control})}
    for article in articles.values():
        assert not NAMES[other].search(everything(article)), f"{article.id} names {other}"
    registry = articles["registre-images"]
    assert values["registry"] in registry.title
    assert f"`{values['registry.host']}/<projet>/<image>:<tag>`" in registry.summary
    assert values["url.registry"] in registry.body


def test_only_harbor_speaks_of_its_quota_and_retention() -> None:
    harbor = {a.id: a for a in load_articles(KB, HARBOR)}["registre-images"]
    quay = {a.id: a for a in load_articles(KB, QUAY)}["registre-images"]
    assert "Rétention" in harbor.body and "quota" in harbor.summary
    assert "Rétention" not in quay.body and "quota" not in quay.summary
    assert "l'organisation Quay" in quay.summary and "le projet Harbor" in harbor.summary


def test_the_console_is_offered_only_where_the_bot_goes_through_it() -> None:
    direct = {a.id: a for a in load_articles(KB, {"control": "direct"})}
    console = {a.id: a for a in load_articles(KB, {"control": "console"})}
    for article_id in ("reprovisionner-le-projet", "projet-verrouille-ou-en-echec"):
        assert "« Reprovisionner le projet »" not in direct[article_id].summary
        assert "« Reprovisionner le projet »" in console[article_id].summary


def test_the_platform_addresses_are_listed_when_configured() -> None:
    bare = {a.id: a for a in load_articles(KB)}["urls-changees-v9"]
    assert "Les adresses de la plateforme" not in bare.body
    urls = {"url.gitlab": "https://gitlab.cpn.example", "url.argocd": "https://argocd.cpn.example"}
    listed = {a.id: a for a in load_articles(KB, urls)}["urls-changees-v9"]
    assert "- GitLab : https://gitlab.cpn.example" in listed.body
    assert "- ArgoCD : https://argocd.cpn.example" in listed.body
    assert "SonarQube : " not in listed.body  # not configured: not listed


def test_every_placeholder_in_kb_is_known() -> None:
    used: set[str] = set()
    for path in sorted(KB.glob("*.md")):
        names = placeholders(path.read_text(encoding="utf-8"))
        assert names <= TEMPLATE_NAMES, f"{path.name}: unknown {sorted(names - TEMPLATE_NAMES)}"
        used |= names
    assert {"registry", "registry.host", "control", "url.registry", "url.gitlab"} <= used
    load_articles(KB)  # and every block is balanced


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        ("le registre {{registry}}", {}, "le registre Quay"),
        ("{{ registry }}", {"registry": "Harbor"}, "Harbor"),
        ("{{if registry=harbor}}H{{else}}Q{{end}}", {"registry": "Harbor"}, "H"),
        ("{{if registry=harbor}}H{{else}}Q{{end}}", {}, "Q"),
        ("{{if registry!=harbor}}pas Harbor{{end}}", {}, "pas Harbor"),
        ("a{{if url.vault}} ({{url.vault}}){{end}}.", {}, "a."),
        ("a{{if url.vault}} ({{url.vault}}){{end}}.", {"url.vault": "https://v"}, "a (https://v)."),
        ("{{if control=console}}{{if url.console}}C {{url.console}}{{else}}C{{end}}{{else}}D{{end}}", {}, "D"),
        ("{{if control=console}}{{if url.console}}C{{else}}c{{end}}{{end}}", {"control": "console"}, "c"),
        ("{} et {x} restent tels quels", {}, "{} et {x} restent tels quels"),
    ],
)
def test_render_template(template: str, values: dict[str, str], expected: str) -> None:
    assert render_template(template, values) == expected


def test_a_value_is_inserted_as_text_never_read_as_a_tag() -> None:
    assert render_template("{{url.gitlab}}", {"url.gitlab": "{{registry}}"}) == "{{registry}}"


@pytest.mark.parametrize(
    ("template", "error"),
    [
        ("{{registre}}", "unknown placeholder {{registre}}"),
        ("{{if url.jenkins}}x{{end}}", "unknown placeholder {{url.jenkins}}"),
        ("{{__class__.__mro__}}", "unknown placeholder"),
        ("{{registry | upper}}", "malformed tag"),
        ("{{if registry=harbor}}x", "not closed"),
        ("x{{end}}", "{{end}} without"),
        ("{{else}}", "{{else}} without"),
        ("{{if url.vault}}a{{else}}b{{else}}c{{end}}", "{{else}} without"),
    ],
)
def test_a_bad_tag_fails_when_the_base_is_loaded(template: str, error: str) -> None:
    with pytest.raises(ArticleError, match=re.escape(error)):
        render_template(template, {}, "kb/x.md")


def test_a_bad_tag_in_an_article_names_its_file(tmp_path: Path) -> None:
    text = (KB / "registre-images.md").read_text(encoding="utf-8").replace("{{registry}}", "{{registy}}", 1)
    (tmp_path / "registre-images.md").write_text(text, encoding="utf-8")
    with pytest.raises(ArticleError, match=r"registre-images\.md: unknown placeholder \{\{registy\}\}"):
        load_articles(tmp_path)


def test_only_known_values_may_be_given() -> None:
    with pytest.raises(ArticleError, match=r"unknown template values: url\.jenkins"):
        render_template("x", {"url.jenkins": "https://j"})
    assert set(TEMPLATE_DEFAULTS) == TEMPLATE_NAMES
