"""Answer quality of the knowledge base: top-1 / top-3 accuracy, off-topic refusals, search latency.

Three question sets: ``tests/kb/questions.toml``, realistic beta testers' questions, each with the id of the
article that answers it, and off-topic questions the bot must refuse ("I don't know", ticket offered); and
``tests/kb/questions_heldout.toml``, written without reading the articles, where some questions ask about
the asker's own project (``intent``: bot.intents). A question is answered right when the bot does what the
set expects: the contextual intent recognised (with its target), or no intent and the expected article first.

    .venv/bin/python bench/bench_kb.py [--kb kb] [--questions FILE …] [--misses] [--rounds 5]

Read the figures with care: the scorer's constants, the synonyms and some wording of the articles were
adjusted while looking at these questions, so the figures over the whole set are optimistic. Each of the
last three batches of the file was first run once as a held-out set, before anything was changed for it;
top-1 accuracy on those first runs was 72 % (47 questions), 69 % (48) and 63 % (38), top-3 89 %, 98 %
and 79 %, off-topic refusals 100 %, 100 % and 92 %. Expect that level on questions nobody has seen yet,
and keep adding real questions (with their answer) as beta testers ask them.

``tests/kb/questions_heldout2.toml`` (58 on-topic, 4 off-topic), written on 2026-12-06 before the articles'
``errors`` signatures, the noise weight of digit-bearing unknown words and the English synonyms were
added: its first run gave top-1 51.7 % (30/58), top-3 87.9 %, off-topic refusals 100 %. Those changes
were written from the tools' real messages, but with both held-out sets' misses in view: the figures
after them (printed below) are not a blind measure any more.

``tests/kb/questions_heldout3.toml`` (60 on-topic, 5 off-topic, 8 contextual), written blind later that day
before any change for it: first run top-1 75.0 % (51/68), top-3 88.2 %, off-topic refusals 100 %. The
changes made after it are general (mistyped stop words dropped instead of corrected into an article's
word, chat shorthand and English fillers as stop words, "marche pas"/"not working" as failures, a few
English words for the articles' French ones, "down" as a failure), but were made with its misses in view:
83.8 % (57/68) after them.

``tests/kb/questions_heldout4.toml`` (60 on-topic, 5 off-topic, 6 contextual) is a test set, written blind
after those changes: first run top-1 77.3 % (51/66), top-3 97.0 %, off-topic refusals 100 %. The scorer's
four constants were then chosen together on the development sets only (questions.toml and the first three
held-out sets; this set's misses not looked at): top-1 80.3 % (53/66) on it afterwards, the one figure
here that measured how the ranking does on questions nobody tuned it for. On 2026-12-07 its misses were
looked at: it is a development set since.

``tests/kb/questions_heldout6.toml`` to ``questions_heldout14.toml`` were written on 2026-12-07, each
without reading the fifth set (below) and before the changes made for it, each after the changes made for
the one before; each was then a development set. Their first runs, top-1: 89.3 % (50/56), 77.8 % (35/45),
75.6 % (34/45, long questions), 66.7 % (30/45; 71.1 % with two wrong expectations corrected), 77.1 %
(37/48), 72.9 % (35/48, yes/no questions; 75.0 % corrected), 91.7 % (33/36, pasted messages), 91.7 %
(44/48, typed in a hurry) and 36.2 % (17/47, problems described without the tools' names, 44.7 % after:
what matching words cannot reach). The changes they led to are the articles' wording and tags in the
words people use, synonyms, stop words, facts the articles missed (who may create a project or deploy to
production), and one rule: an article that covers three of the question's known terms answers from a
confidence of 0.35.

``tests/kb/questions_heldout5.toml`` (67 on-topic, 5 off-topic) is the test set, written blind on
2026-12-06 from the articles' ids and titles; its misses have never been looked at. First run
(2026-12-06, before the English lexicon): top-1 79.1 % (53/67), top-3 94.0 %, off-topic refusals 100 %.
Second run, on 2026-12-07 after the changes made for the sixth to fourteenth sets: top-1 88.1 % (59/67),
top-3 100 %, off-topic refusals 100 % (5/5).

Exit 0 when both targets are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import heading, machine_line, percentile, table, verdict
from bot.intents import classify
from bot.knowledge import (
    CONFIDENCE_THRESHOLD,
    KnowledgeBase,
    open_knowledge_base,
)

ROOT = Path(__file__).resolve().parent.parent
TOP1_TARGET = 0.85
OFFTOPIC_TARGET = 0.90


@dataclass(frozen=True)
class Question:
    text: str
    expected: str | None  # None: off-topic, the bot must say it does not know (or a contextual intent)
    intent: str = ""  # a question about the asker's project (bot.intents), answered from it
    target: str = ""  # the service of an address question


def load_questions(path: str | Path) -> list[Question]:
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    questions = [
        Question(q["text"], q.get("expected"), q.get("intent", ""), q.get("target", ""))
        for q in data.get("question", [])
    ]
    questions += [Question(q["text"], None) for q in data.get("offtopic", [])]
    return questions


@dataclass
class Results:
    on_topic: int = 0
    top1: int = 0  # the expected article is the answer given (known and first)
    top3: int = 0  # the expected article is among the three first hits
    off_topic: int = 0
    refused: int = 0  # off-topic questions answered "I don't know"
    latencies: list[float] = field(default_factory=list)  # seconds per answer() call
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)  # question, expected, got, confidence

    @property
    def top1_rate(self) -> float:
        return self.top1 / self.on_topic if self.on_topic else 0.0

    @property
    def top3_rate(self) -> float:
        return self.top3 / self.on_topic if self.on_topic else 0.0

    @property
    def refusal_rate(self) -> float:
        return self.refused / self.off_topic if self.off_topic else 0.0


def evaluate(base: KnowledgeBase, questions: list[Question], rounds: int = 1) -> Results:
    """Ask every question (``rounds`` times for the latency figures; quality is counted once)."""
    results = Results()
    for question in questions:
        intent = classify(question.text)
        if question.intent:
            results.on_topic += 1
            if intent is not None and (intent.kind, intent.target) == (question.intent, question.target):
                results.top1 += 1
                results.top3 += 1
            else:
                got = f"intent {intent.kind} {intent.target}".strip() if intent else "(no intent)"
                results.misses.append((question.text, f"intent {question.intent} {question.target}".strip(), got, 0.0))
            continue
        for _ in range(max(1, rounds)):
            started = time.perf_counter()
            answer = base.answer(question.text)
            results.latencies.append(time.perf_counter() - started)
        if question.expected is None:
            results.off_topic += 1
            if not answer.known:
                results.refused += 1
            else:
                assert answer.best is not None
                results.misses.append((question.text, "(off-topic)", answer.best.article.id, answer.confidence))
            continue
        results.on_topic += 1
        top3 = [h.article.id for h in base.search(question.text, limit=3)]
        if question.expected in top3:
            results.top3 += 1
        if intent is not None:  # in a linked channel, answered from the project instead of the article
            results.misses.append((question.text, str(question.expected), f"intent {intent.kind}", 0.0))
        elif answer.known and answer.best is not None and answer.best.article.id == question.expected:
            results.top1 += 1
        else:
            nearest = answer.best or answer.nearest
            got = nearest.article.id if nearest else "(nothing)"
            if not answer.known:
                got = f"(don't know; nearest {got})"
            results.misses.append((question.text, question.expected, got, nearest.confidence if nearest else 0.0))
    return results


QUESTION_SETS = tuple(
    ROOT / "tests" / "kb" / name
    for name in (
        "questions.toml",
        "questions_heldout.toml",
        "questions_heldout2.toml",
        "questions_heldout3.toml",
        "questions_heldout4.toml",
        "questions_heldout6.toml",
        "questions_heldout7.toml",
        "questions_heldout8.toml",
        "questions_heldout9.toml",
        "questions_heldout10.toml",
        "questions_heldout11.toml",
        "questions_heldout12.toml",
        "questions_heldout13.toml",
        "questions_heldout14.toml",
    )
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb", default=str(ROOT / "kb"), help="directory of the articles")
    parser.add_argument("--questions", nargs="+", default=[str(p) for p in QUESTION_SETS])
    parser.add_argument("--rounds", type=int, default=5, help="answers per question for the latency figures")
    parser.add_argument("--misses", action="store_true", help="list every question answered wrongly")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    base = open_knowledge_base(args.kb)
    indexing = time.perf_counter() - started
    heading("Knowledge base: answer quality")
    print(machine_line())
    print(f"{len(base.articles)} articles indexed in {indexing * 1000:.0f} ms; threshold {CONFIDENCE_THRESHOLD}")
    passed = True
    for path in args.questions:
        results = evaluate(base, load_questions(path), rounds=args.rounds)
        print()
        print(f"{Path(path).name}: {results.on_topic} on-topic and {results.off_topic} off-topic questions")
        latencies_ms = [s * 1000 for s in results.latencies]
        top1_ok = results.top1_rate >= TOP1_TARGET
        refusal_ok = results.refusal_rate >= OFFTOPIC_TARGET
        passed = passed and top1_ok and refusal_ok
        table(
            ["measure", "value", "target", "verdict"],
            [
                [
                    "top-1 accuracy (on-topic)",
                    f"{results.top1_rate:.1%} ({results.top1}/{results.on_topic})",
                    f">= {TOP1_TARGET:.0%}",
                    verdict(top1_ok),
                ],
                ["top-3 accuracy (on-topic)", f"{results.top3_rate:.1%} ({results.top3}/{results.on_topic})", "", ""],
                [
                    "off-topic answered 'I don't know'",
                    f"{results.refusal_rate:.1%} ({results.refused}/{results.off_topic})",
                    f">= {OFFTOPIC_TARGET:.0%}",
                    verdict(refusal_ok),
                ],
                ["search latency p50", f"{percentile(latencies_ms, 50):.2f} ms", "", ""],
                ["search latency p99", f"{percentile(latencies_ms, 99):.2f} ms", "", ""],
            ],
        )
        if args.misses and results.misses:
            heading(f"Misses of {Path(path).name}")
            table(
                ["question", "expected", "answered", "confidence"],
                [[q[:70], e, g, f"{c:.2f}"] for q, e, g, c in results.misses],
            )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
