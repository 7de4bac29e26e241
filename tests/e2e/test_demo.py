"""``cpn-bot demo``: the scripted tour passes, prints every step, and reports failures without tracebacks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bot.i18n import Text
from bot.sandbox.demo import STEPS, Demo, DemoStep, StepResult, run_demo, text_of


def verdicts(transcript: str) -> dict[str, str]:
    """Step title → its verdict line (the first ✔/✘ line after the step's heading)."""
    found: dict[str, str] = {}
    title = ""
    for line in transcript.splitlines():
        if line.startswith("▶ "):
            title = line[2:]
        elif title and line.startswith(("✔", "✘")):
            found[title] = line
            title = ""
    return found


@pytest.mark.parametrize("control", ["direct", "console"])
def test_the_tour_passes_and_shows_each_step(
    control: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    code = run_demo(control=control)
    out = capsys.readouterr().out
    assert code == 0, out
    seen = verdicts(out)
    for step in STEPS:
        title = step.title("fr")
        assert title in seen, f"step {title!r} missing from the transcript"
        assert seen[title].startswith("✔"), f"{title}: {seen[title]}"
    total = len(STEPS)
    assert f"{total} étapes, {total} réussies, 0 échouées" in out
    # What the team typed and saw is in the transcript, secrets typed in dialogs are not.
    assert "@bob ~equipe-alpha> /cpn project create demo" in out
    assert "Projet prêt" in out and "Rien à réparer" in out
    assert "(champ mot de passe)" in out and "ghp_" not in out
    # The team at work: a failing build, the scan against the policy, a deploy, a question, a ticket.
    assert "@bob ~equipe-alpha> /cpn sync demo api" in out
    assert "❌ Le job `build` (étape `build`) a échoué" in out and "quality gate en échec" in out
    assert "❌ Ce scan dépasse la politique du projet. @bob" in out
    assert "@bob appuie sur « Confirmer »" in out and "sur demo / prod — réussi" in out
    assert "@alice ~equipe-alpha> @cpn-bot comment je synchronise mon dépôt ?" in out and "📘" in out
    assert "[~support-cpn] @cpn-bot" in out
    assert "Traceback" not in out and "\x1b[" not in out
    # The platform of each mode: the console's Harbor, or the bot's own Quay; the console's own
    # first sync of a new environment is not a deploy "made outside the bot".
    registry = {"direct": "Quay", "console": "Harbor"}[control]
    assert f"✅ {registry}" in out and "hors du bot" not in out
    assert ("🟢 Console" in out) == (control == "console")


def test_cpn_bot_demo_exits_0(tmp_path: Path) -> None:
    executable = Path(sys.executable).with_name("cpn-bot")
    env = {**os.environ, "NO_COLOR": "1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    done = subprocess.run(
        [str(executable), "demo"], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    total = len(STEPS)
    assert f"{total} étapes, {total} réussies, 0 échouées" in done.stdout
    assert "✘" not in done.stdout and "Traceback" not in done.stderr


# -- a tour of our own: a button pressed, a check that fails, a step that crashes -------------------


def _run_delete_secret(demo: Demo) -> None:
    demo.command("bob", "/cpn project create essai")
    demo.command("bob", "/cpn secret set essai API_KEY")
    demo.submit_dialog("bob", {"value": demo.app_secret}, secret={"value"})
    demo.command("bob", "/cpn secret delete essai API_KEY")
    demo.press("bob", "Confirm")


def _check_delete_secret(demo: Demo, result: StepResult) -> None:
    demo.expect(demo.vault_secret("API_KEY", mount="essai") is None, "still in Vault")
    demo.expect(any("API_KEY" in text_of(p) for p in result.ephemerals("bob")), "no answer to bob")
    demo.expect(not demo.leaks(demo.app_secret), "the value leaked")


def _run_whoami(demo: Demo) -> None:
    demo.command("carol", "/cpn whoami")


def _check_impossible(demo: Demo, result: StepResult) -> None:
    demo.expect("@carol" not in result.answer_text(), "carol is carol")


def _crash(demo: Demo) -> None:
    raise RuntimeError("boom\nwith a second line")


def _never(demo: Demo, result: StepResult) -> None:
    raise AssertionError("not reached")


OWN_TOUR = [
    DemoStep(Text("Bouton", "A button pressed"), _run_delete_secret, _check_delete_secret),
    DemoStep(Text("Échec", "A check that fails"), _run_whoami, _check_impossible),
    DemoStep(Text("Plantage", "A step that crashes"), _crash, _never),
]


def test_failures_and_crashes_are_failed_steps_with_a_reason(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    code = run_demo("en", steps=OWN_TOUR)
    out = capsys.readouterr().out
    kept = re.search(r"Sandbox data kept for diagnosis \(configuration, SQLite, log\): (\S+)", out)
    try:
        assert code == 1, out
        seen = verdicts(out)
        assert seen["A button pressed"].startswith("✔"), out
        assert "@bob presses “Confirm”" in out
        assert seen["A check that fails"].startswith("✘ carol is carol")
        assert seen["A step that crashes"].startswith("✘ the step crashed: RuntimeError: boom with a second line")
        assert "3 steps, 1 passed, 2 failed" in out
        assert "Traceback" not in out
        assert kept is not None and (Path(kept.group(1)) / "demo.log").is_file()
    finally:
        if kept is not None:
            shutil.rmtree(kept.group(1), ignore_errors=True)
