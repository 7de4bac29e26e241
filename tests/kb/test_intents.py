"""The questions about the asker's own project are recognised (bot.intents), in paraphrases, typos and
English; the knowledge base's questions are left to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.bench_kb import Question, load_questions
from bot.intents import ADDRESS, DEPLOY_FAILURE, PIPELINE_FAILURE, PROJECT_STATUS, Intent, classify

HERE = Path(__file__).parent
# Every development set; questions_heldout5.toml, the test set, is left out.
HELDOUT_SETS = tuple(f"questions_heldout{n}.toml" for n in ("", 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14))
HELDOUT = [q for name in HELDOUT_SETS for q in load_questions(HERE / name) if q.intent]
KB_QUESTIONS = [q.text for q in load_questions(HERE / "questions.toml")] + [
    q.text for name in HELDOUT_SETS for q in load_questions(HERE / name) if not q.intent
]


@pytest.mark.parametrize(
    ("question", "intent"),
    [
        ("pourquoi mon pipeline a échoué ?", Intent(PIPELINE_FAILURE)),
        ("POURQUOI MON PIPLINE A ECHOUE", Intent(PIPELINE_FAILURE)),
        ("why did my build fail", Intent(PIPELINE_FAILURE)),
        ("pourquoi mon déploiement est en échec ?", Intent(DEPLOY_FAILURE)),
        ("pourquoi mon deploiment a echoue", Intent(DEPLOY_FAILURE)),
        ("why is my deployment failing?", Intent(DEPLOY_FAILURE)),
        ("où en est mon projet ?", Intent(PROJECT_STATUS)),
        ("what's the status of my project", Intent(PROJECT_STATUS)),
        ("quelle est l'adresse de GitLab ?", Intent(ADDRESS, "gitlab")),
        ("quelle est l'adresse de harbor", Intent(ADDRESS, "registry")),
        ("what is the url of sonarqube", Intent(ADDRESS, "sonarqube")),
        ("lien vers la console ?", Intent(ADDRESS, "console")),
        ("mon appli est down en dev", Intent(DEPLOY_FAILURE)),
        ("notre application est en panne depuis ce matin", Intent(DEPLOY_FAILURE)),
    ],
)
def test_contextual_questions_are_recognised(question: str, intent: Intent) -> None:
    assert classify(question) == intent


@pytest.mark.parametrize(
    "question",
    [
        "mon pipeline échoue sur trivy, que faire ?",  # a tool named: the article on that tool
        "le job trivy échoue",
        "comment corriger un pipeline en échec ?",  # how to: the knowledge base
        "le projet est verrouillé",
        "les adresses ont changé depuis la v9",
        "le lien vers sonarqube ne marche plus depuis la mise à jour",  # a broken link: the URLs article
        "les liens vers argocd sont cassés depuis la migration",
        "la variable SONAR_HOST_URL est définie où ?",
        "refresh ou sync dans argocd ?",  # "ou" is "or"
        "",
        "   ",
    ],
)
def test_knowledge_base_questions_are_left_to_it(question: str) -> None:
    assert classify(question) is None


@pytest.mark.parametrize("question", HELDOUT, ids=[q.text[:40] for q in HELDOUT])
def test_every_contextual_question_of_the_held_out_set(question: Question) -> None:
    assert classify(question.text) == Intent(question.intent, question.target)


def test_no_knowledge_base_question_is_taken_for_a_contextual_one() -> None:
    taken = [(q, classify(q)) for q in KB_QUESTIONS if classify(q) is not None]
    assert not taken
