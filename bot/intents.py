"""Questions about the asker's own project, recognised before the knowledge base is searched (pure).

Four questions get an answer from the project itself, in a channel linked to it:

- ``pipeline_failure``: "pourquoi mon pipeline a échoué ?", "why did my build fail?";
- ``deploy_failure``: "pourquoi mon déploiement est en échec ?", "my app is unhealthy in argocd";
- ``project_status``: "où en est mon projet ?", "what's the status of my project?";
- ``address``: "quelle est l'adresse de GitLab ?", with the service asked for as ``target``.

Everything else is a question for the knowledge base. The words are matched folded (no case, no
accents) and forgiving of one typing mistake in a word of six letters or more (``pipline``,
``deploiment``); a question that names a tool or an error (``trivy``, ``kyverno``…) or asks how to do
something ("comment", "how to") is a how-to question, answered by an article, never by the project's
state.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

from bot.knowledge import edit_distance, words

#: Shortest word matched with one typing mistake (shorter ones are too close to other words: passe, casse).
MIN_FUZZY_LENGTH = 6
PIPELINE_FAILURE = "pipeline_failure"
DEPLOY_FAILURE = "deploy_failure"
PROJECT_STATUS = "project_status"
ADDRESS = "address"
INTENTS = (PIPELINE_FAILURE, DEPLOY_FAILURE, PROJECT_STATUS, ADDRESS)


@dataclass(frozen=True)
class Intent:
    kind: str
    target: str = ""  # for an address: the service (gitlab, registry, sonarqube, argocd, vault, nexus, console)


# fmt: off
PIPELINE_WORDS = frozenset({"pipeline", "pipelines", "pipe", "ci", "cicd", "build", "builds", "job", "jobs", "chaine"})
DEPLOY_WORDS = frozenset({
    "deploiement", "deploiements", "deploy", "deployer", "deployment", "deployments", "deployed", "argo",
    "argocd", "appli", "application", "app", "mep", "livraison",
})
FAILURE_WORDS = frozenset({
    "echec", "echoue", "echouee", "echouer", "echoué", "fail", "fails", "failed", "failing", "failure", "ko",
    "rouge", "red", "plante", "planter", "crash", "crashed", "casse", "cassee", "broke", "broken", "erreur",
    "error", "errors", "degraded", "degrade", "unhealthy", "wrong", "marche", "fonctionne", "bloque", "bloquee",
    "down", "panne", "hs", "indisponible", "unavailable",
})
#: Words that ask for a cause, or say it is the asker's own pipeline or deployment.
CAUSE_WORDS = frozenset({
    "pourquoi", "pk", "pq", "why", "cause", "raison", "quoi", "what", "regarder", "passe", "dernier",
    "derniere", "mon", "ma", "mes", "my", "our", "notre", "nos", "va", "idee", "idea",
})
#: A how-to question or one about a tool or an error is the knowledge base's.
HOWTO_WORDS = frozenset({
    "comment", "how", "trivy", "sonar", "sonarqube", "kyverno", "maven", "npm", "nexus", "pkix", "cve",
    "vulnerabilite", "vulnerabilites", "imagepullbackoff", "errimagepull", "quota", "declenche", "declencher",
    "trigger", "triggered", "lance", "rollback", "revenir", "precedente", "signature", "cosign", "secret",
    "vault", "namespace", "logs", "oomkilled", "readonly", "read", "kaniko", "dockerfile", "gate", "variable",
    "variables", "mirror", "miroir", "synchro", "synchronisation", "sync", "resync", "scan", "scanner", "securite",
})
PROJECT_WORDS = frozenset({"projet", "project"})
STATE_VERBS = frozenset({"est", "sont", "is", "are"})
STATUS_WORDS = frozenset({"etat", "statut", "status", "avancement", "doing", "point", "resume", "summary", "pret"})
#: "ça ne va pas", "ne démarre pas": a failure said without a failure word.
FAILURE_PHRASES = (
    ("va", "pas"), ("marche", "pas"), ("demarre", "pas"), ("passe", "pas"), ("start",), ("not", "working"),
    ("won", "t"), ("wont",), ("doesn", "t", "work"), ("isn", "t", "working"),
)
STATUS_PHRASES = (("ou", "en", "est"), ("ou", "en", "sont"), ("comment", "va"), ("how", "is"), ("how", "s"))
#: A status question about something else than a project is the knowledge base's.
STATUS_EXCLUDED = frozenset({
    "verrouille", "locked", "lock", "supprimer", "delete", "creer", "create", "version", "nommage", "replay",
    "reprovisionner", "membre", "member",
})
ADDRESS_WORDS = frozenset({"adresse", "adresses", "url", "urls", "lien", "liens", "link", "links"})
#: "Where is / where can I find / où se trouve" also asks for an address, when a service is named.
#: Folded, "où" is "ou" ("or"): the plain word counts only with the accent or in these phrases.
WHERE_WORDS = frozenset({"where", "find"})
WHERE_PHRASES = (("ou", "est"), ("ou", "sont"), ("ou", "se"), ("ou", "trouver"))
#: An address that changed (or broke: FAILURE_WORDS), or a variable holding one, is the knowledge
#: base's question.
ADDRESS_EXCLUDED = frozenset({
    "change", "changee", "changees", "changed", "v9", "ancien", "ancienne", "anciennes", "organisation",
    "disparu", "variable", "variables", "var", "migration", "migre", "migree", "maj", "update", "updated",
    "upgrade",
})
#: ``SONAR_HOST_URL``, ``REGISTRY_HOST``: a CI variable's name, asked about, not a service's address.
_VARIABLE_NAME = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b")
SERVICES: dict[str, str] = {
    "gitlab": "gitlab", "sonar": "sonarqube", "sonarqube": "sonarqube", "argo": "argocd", "argocd": "argocd",
    "vault": "vault", "nexus": "nexus", "registry": "registry", "registre": "registry", "harbor": "registry",
    "quay": "registry", "console": "console",
}
# fmt: on


@lru_cache(maxsize=4096)
def _matches(word: str, vocabulary: frozenset[str]) -> bool:
    """``word`` is in ``vocabulary``, or one typing mistake away from a word of five letters or more."""
    if word in vocabulary:
        return True
    if len(word) < MIN_FUZZY_LENGTH:
        return False
    return any(
        len(known) >= MIN_FUZZY_LENGTH and abs(len(known) - len(word)) <= 1 and edit_distance(word, known) <= 1
        for known in vocabulary
    )


def _any(tokens: list[str], vocabulary: frozenset[str]) -> bool:
    return any(_matches(token, vocabulary) for token in tokens)


def _has_phrase(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return any(tuple(tokens[i : i + size]) == phrase for i in range(len(tokens) - size + 1))


def _service(tokens: list[str]) -> str:
    for token in tokens:
        for name, service in SERVICES.items():
            if token == name or (len(token) >= MIN_FUZZY_LENGTH <= len(name) and edit_distance(token, name) <= 1):
                return service
    return ""


def classify(question: str) -> Intent | None:
    """The contextual question ``question`` asks, or None for a question for the knowledge base."""
    tokens = words(question[:500])
    if not tokens:
        return None
    service = _service(tokens)
    failure = _any(tokens, FAILURE_WORDS) or any(_has_phrase(tokens, p) for p in FAILURE_PHRASES)
    if service and not failure and not _any(tokens, ADDRESS_EXCLUDED) and not _VARIABLE_NAME.search(question):
        where = (
            "où" in question.lower() or _any(tokens, WHERE_WORDS) or any(_has_phrase(tokens, p) for p in WHERE_PHRASES)
        )
        if _any(tokens, ADDRESS_WORDS) or where:
            return Intent(ADDRESS, service)
    if service and failure and _any(tokens, ADDRESS_WORDS):
        return None  # "le lien vers argocd est cassé": a link that broke, not the deployment
    howto = _any(tokens, HOWTO_WORDS)
    if _any(tokens, PROJECT_WORDS) and not _any(tokens, STATUS_EXCLUDED) and not _any(tokens, FAILURE_WORDS):
        if _any(tokens, STATUS_WORDS) or any(_has_phrase(tokens, p) for p in STATUS_PHRASES):
            return Intent(PROJECT_STATUS)
    # "est cassé", "is broken": the state of the asker's pipeline or deployment now, said as a fact.
    stated = any(a in STATE_VERBS and _matches(b, FAILURE_WORDS) for a, b in itertools.pairwise(tokens))
    failing = failure and (stated or _any(tokens, CAUSE_WORDS)) and not howto
    if failing and _any(tokens, DEPLOY_WORDS):
        return Intent(DEPLOY_FAILURE)
    if failing and _any(tokens, PIPELINE_WORDS):
        return Intent(PIPELINE_FAILURE)
    return None
