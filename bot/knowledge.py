"""The support knowledge base: French articles in ``kb/``, searched with SQLite FTS5.

Independent of the bot runtime: it needs only ``sqlite_utils`` and ``snowballstemmer``.

How a question is answered:

1. :func:`normalize` turns text into search terms: lowercase, accents folded, split on anything that
   is not a letter or a digit (so ``l'environnement`` and ``read_secret`` split), multi-word synonyms
   replaced (``mot de passe``, ``quality gate``…), French and chat stop words dropped (``svp``,
   ``bonjour``…), words stemmed with the Snowball French stemmer, and synonyms mapped to one canonical
   term (``synchronisation``, ``sync``, ``mirror`` → ``synchro``).
2. :class:`KnowledgeBase` stores each article and its normalised fields in SQLite, with an FTS5 index
   over title, tags, summary and body (made by sqlite-utils ``enable_fts``).
3. A question's terms that the corpus never uses are corrected when a corpus word is one or two
   typing mistakes away (``synchronistion``, ``deploiment``, ``kyvernos``).
4. FTS5 ranks the articles with ``bm25`` (title and tags weigh more than the body), every term quoted
   and joined with ``OR``: no user text ever reaches the FTS query syntax.
5. The candidates are re-ranked by bm25 (relative to the best one) times their confidence, with a bonus
   (:data:`TITLE_BONUS`) for the share of the question's terms found in the title: FTS5 gives a term
   present in more than half of the articles almost no idf, so a question made only of such terms
   would otherwise end in a tie.
6. The confidence of a hit is the share of the question's information that the article covers: each
   term weighs its inverse document frequency; a term the corpus never uses weighs
   :data:`UNKNOWN_TERM_WEIGHT` (words of another subject: football, recipes, printers…); a known word
   that no title or tag uses is generic and weighs :data:`GENERIC_FACTOR` of its idf; a term that names a
   tool or an error (:data:`SPECIFIC_WORDS`: trivy, kyverno, ImagePullBackOff…) weighs
   :data:`SPECIFIC_FACTOR` times its idf, since it, not "pipeline" or "échoue", says what the question
   is about; a term found only
   in an article's body counts :data:`BODY_ONLY_FACTOR`, a corrected one :data:`CORRECTED_FACTOR`.
   Under :data:`CONFIDENCE_THRESHOLD` the bot says it does not know and offers a ticket, unless the
   best article covers :data:`COVERED_TERMS` of the question's known terms with at least
   :data:`LOW_CONFIDENCE_THRESHOLD`: a long question in the asker's own words carries many words no
   article uses, while a question of another subject rarely shares three words with one article.

The weights and thresholds were tuned with ``bench/bench_kb.py`` over ``tests/kb/questions.toml``;
the figures are flat around the chosen values (±0.1 on a factor moves top-1 accuracy by a point or
two), which is why round values were kept.

Typical use::

    base = KnowledgeBase(sqlite_utils.Database("kb.db"))
    base.index(load_articles("kb"))
    answer = base.answer("comment synchroniser mon dépôt ?")
    if answer.known:
        print(answer.best.article.summary)

"""

from __future__ import annotations

import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import snowballstemmer
import sqlite_utils

from bot.lexicon import ENGLISH, GENERIC_WORDS, inflections

# -- tuning constants (measured with bench/bench_kb.py) ---------------------------------------------

#: bm25 weights of the indexed columns, in the order title, tags, summary, body.
COLUMN_WEIGHTS: tuple[float, float, float, float] = (6.0, 4.0, 2.0, 1.0)
#: Under this confidence the answer is "I don't know" (and a ticket is offered).
CONFIDENCE_THRESHOLD = 0.45
#: …or this one, when the article covers this many of the question's known terms (long questions).
LOW_CONFIDENCE_THRESHOLD = 0.35
COVERED_TERMS = 3
#: A hit shown as "see also" must reach this confidence too.
RELATED_THRESHOLD = 0.6
#: Weight of a question term that no article uses (a word the corpus has never seen).
UNKNOWN_TERM_WEIGHT = 2.5
#: Share of a term's weight counted when an article has it only in its body (not title/tags/summary).
BODY_ONLY_FACTOR = 0.6
#: Shortest word that may be corrected (one mistake), and shortest allowed two mistakes.
MIN_TYPO_LENGTH = 6
MIN_TWO_TYPOS_LENGTH = 9
# Shortest stop word a mistyped word is recognised as (and then dropped): comment, pourquoi.
MIN_STOP_TYPO_LENGTH = 7
#: Share of its weight a corrected term counts in the confidence (a correction is a guess).
CORRECTED_FACTOR = 0.85
#: How much bm25 relevance (relative to the best candidate) weighs against confidence when re-ranking.
RELEVANCE_EXPONENT = 0.5
#: Share of its idf a known term weighs when no article has it in its title or tags (a generic word).
GENERIC_FACTOR = 0.5
#: A term that names a tool or an error (:data:`SPECIFIC_WORDS`) weighs this many times its idf: it says
#: what the question is about, where "pipeline" or "échoue" fit a dozen articles.
SPECIFIC_FACTOR = 2.0
#: Re-ranking bonus for the share of the question's terms found in an article's title. These four were
#: chosen together on the development sets (questions.toml, questions_heldout*.toml up to the third):
#: the title says what an article is about, bm25's term counts less (long articles repeat words).
TITLE_BONUS = 3.0
#: Candidates that bm25 returns before they are re-ranked by bm25 and confidence together.
CANDIDATES = 12
#: Questions are cut to this many characters (at a word boundary) before they are analysed.
MAX_QUESTION_CHARS = 1000
#: Weight of a term no article uses and that holds a digit (a version, an id, a hash, a pod's name): the
#: noise of a pasted message, which should not drown the words that say what went wrong.
NOISE_TERM_WEIGHT = 0.5
#: An error message an article lists (``errors``) found in the question: the article's confidence.
ERROR_CONFIDENCE = 0.95
#: Words a signature's words may have between them in the question (numbers, names in the message).
ERROR_GAP = 3
#: At most this many distinct terms of a question are searched.
MAX_QUERY_TERMS = 40

REQUIRED_FIELDS = ("id", "title", "tags", "commands", "links", "summary")
ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

#: Words that name a tool of the platform or an error people paste: the subject of a question that uses
#: them. Normalised like any text (``SPECIFIC_TERMS``), so synonyms and stems follow.
# fmt: off
SPECIFIC_WORDS: tuple[str, ...] = (
    "trivy", "sonarqube", "kyverno", "argocd", "vault", "nexus", "maven", "npm", "postgresql",
    "openshift", "kubernetes", "helm", "kaniko", "loki", "grafana", "errimagepull",
    "imagepullbackoff", "crashloopbackoff", "oomkilled", "pkix", "ssl", "gitleaks",
)
# fmt: on

# -- normalisation ----------------------------------------------------------------------------------

#: Stop words, accents folded: French function words, chat fillers, a few English ones.
STOP_WORDS: frozenset[str] = (
    frozenset(
        """
    a ai aie aient aies ait as au aux avaient avais avait avec avez aviez avions avoir avons ayant ca car ce
    ceci cela celle celles celui cet cette ces ceux chez comme comment d dans de des du donc dont elle elles en
    encore entre es est et etaient etais etait etant ete etes etre eu eux fait faire fais faut falloir fois hors
    il ils j je jusqu l la le les leur leurs lui m ma mais me meme memes mes moi mon n ne ni nos notre nous on
    ont or ou par parce pas peu peut peuvent peux plus pour pourquoi pouvoir pouvez puis puisque qu quand que
    quel quelle quelles quels qui quoi s sa sans se sera serait ses si sien soi soit son sont suis sur t ta te
    tes toi ton tous tout toute toutes tres trop tu un une vos votre vous y deja aussi alors ici voila voici
    bien bon ok okay dois doit devoir devez doivent veux veut voudrais voudrait vouloir voulez besoin possible
    quelqu quelque quelques chose truc machin etc svp stp merci bonjour bonsoir salut hello hi coucou please pls
    plz thanks thx urgent marche marcher fonctionne fonctionner probleme problemes souci soucis ya yen sais
    savoir saurait connait comprends comprend qqn qq qlq ptit petit petite faudrait faites dire dit dis mettre
    met mis pb pbm the an to of in is are was my how what why can could do does it its for with and not this
    that we you be there where which when who any some environ cpn propre propres aucun aucune passe passer
    deuxieme premier premiere second seconde autre autres vite rapidement jamais toujours seulement juste
    vraiment exemple moyen maniere facon normal trouve trouver trouvee voir vois voit utiliser utilise hui
    aujourd lorsque pendant depuis apres avant poser pose tourne tourner tournent sert servir servent arrive
    arriver arrivent hier rien jai cest jsp get cpin cloud native pi cloudpinative com fr www http https org io
    i me our your their them they he she at on from by or if has have had been being am did done got should
    would will shall must need needs want wants whether so then than also just only about into out way
    koi pk pq pkoi pourkoi kel kelle ke ki c ds dc pr bcp tjrs tt ptet jpp cmt cmnt comt slt bjr dsl
    right now after before never ever always still again anymore all every one other here yet since until
    while through whose like really very much many lot lots thing things something anything someone anyone
    tell know make made put use used using go going try trying tried but nothing up pick happen happens happened
    chaque chacun chacune clic clics clique cliquer cliques cliquez click clicks clicked
    """.split()
    )
    | GENERIC_WORDS
)

#: Phrases that carry no meaning for the search ("pris en compte", "à cause de"…), dropped whole.
# fmt: off
STOP_PHRASES: tuple[str, ...] = (
    "pris en compte", "prise en compte", "prises en compte", "d un coup", "a cause de", "a cause du", "a cause des",
    "du coup",
    "est ce que", "est ce qu", "qu est ce que", "qu est ce qu", "y a t il", "il y a", "c est quoi", "ca veut dire",
    "veut dire", "en fait", "par contre", "s il vous plait", "s il te plait", "tout le temps", "au secours",
    "je sais pas", "je ne sais pas", "a quoi sert", "a quoi servent", "marche a suivre", "de base", "par erreur",
    "par megarde",
)
# fmt: on

# Synonym groups: canonical term → variants (words or phrases, accents optional). A variant made of
# one word is matched on its stem; a phrase is matched on consecutive folded words, before stop words
# are dropped. Canonical terms are final search terms, never stemmed again.
# fmt: off
SYNONYMS: dict[str, tuple[str, ...]] = {
    "synchro": (
        "synchro", "synchros", "synchronisation", "synchroniser", "synchronise", "sync", "syncro", "synchronization",
        "synchronize", "mirror", "miroir", "mirroring", "mirrorer", "mirroir", "resynchroniser", "resync",
        "resynchro", "copie", "copies", "recopie", "recopier", "recopiee",
    ),
    "deploy": (
        "deploiement", "deployer", "deploye", "deploy", "deployment", "deployed", "livraison", "livrer",
        "mise en production", "mise en prod", "mep", "redeployer", "redeploiement", "redeploy",
    ),
    "sonar": (
        "sonar", "sonarqube", "sonarcloud", "quality gate", "qualitygate", "qualite", "quality", "porte qualite",
        "porte de qualite", "code smell", "code smells", "sonar scanner",
    ),
    "depot": (
        "depot", "depots", "code source", "depo", "depos", "repo", "repos", "repository", "repositories", "referentiel",
        "repertoire git",
    ),
    "env": ("environnement", "environnements", "env", "envs", "environment", "environments"),
    "projet": ("projet", "projets", "project", "projects"),
    "membre": (
        "membre", "membres", "member", "members", "collegue", "collegues", "coequipier", "equipier", "teammate",
        "nouvel arrivant", "inviter", "invitation", "stagiaire", "stagiaires", "alternant", "alternants", "recrue",
        "recrues",
    ),
    "jeton": ("jeton", "jetons", "token", "tokens", "pat", "access token"),
    "identifiant": (
        "identifiant", "identifiants", "credential", "credentials", "creds", "login", "password", "mot de passe",
        "mdp", "passwd", "username", "nom d utilisateur", "mots de passe",
    ),
    "droit": ("droit", "droits", "permission", "permissions", "autorisation", "habilitation", "rbac"),
    "role": ("role", "roles"),
    "log": ("log", "logs", "journal", "journaux", "logging", "stdout"),
    "metrique": ("metrique", "metriques", "metric", "metrics", "monitoring", "supervision", "prometheus"),
    "dashboard": ("dashboard", "dashboards", "tableau de bord", "tableaux de bord"),
    "alerte": ("alerte", "alertes", "alert", "alerts", "alerting", "alertmanager"),
    "registry": ("registry", "registre", "registres", "harbor", "quay", "docker registry"),
    "argocd": ("argocd", "argo", "argo cd", "outil de deploiement"),
    "namespace": ("namespace", "namespaces", "espace de nom", "espace de noms", "espaces de noms", "ns"),
    "kubernetes": ("kubernetes", "k8s", "kube", "kubectl"),
    "openshift": ("openshift", "ocp", "okd"),
    "pipeline": ("pipeline", "pipelines", "pipe", "ci cd", "cicd", "chaine ci"),
    "build": ("build", "builder", "builds", "construire", "construction", "compiler", "compilation", "built"),
    "image": ("image", "images", "image docker", "docker image", "container image", "image de base", "images de base"),
    "conteneur": ("conteneur", "conteneurs", "container", "containers", "docker"),
    "vulnerabilite": ("vulnerabilite", "vulnerabilites", "vuln", "vulns", "cve", "cves", "faille", "failles"),
    "scan": ("scan", "scans", "scanner", "analyse de securite"),
    "trivy": ("trivy",),
    "signature": ("signature", "signer", "signe", "signed", "sign", "cosign", "sigstore"),
    "sauvegarde": ("sauvegarde", "sauvegardes", "sauvegarder", "backup", "backups", "dump", "pg dump"),
    "postgres": ("postgres", "postgresql", "pg", "psql", "pgsql"),
    "bdd": (
        "bdd", "base de donnees", "base relationnelle", "sql", "bases de donnees", "database", "databases", "db",
        "sgbd", "base", "bases", "bd",
    ),
    "bouchon": ("bouchon", "bouchons", "mock", "mocks", "bouchonner", "simuler", "simulation", "stub", "stubs"),
    "prod": ("prod", "production", "prd"),
    "horsprod": ("hors prod", "hors production", "hprod", "hors-prod", "non prod", "nonprod"),
    "supprimer": (
        "supprimer", "suppression", "supprime", "delete", "deleted", "effacer", "detruire", "destruction", "remove",
        "retirer", "virer", "enlever",
    ),
    "creer": ("creer", "creation", "create", "nouveau", "nouvelle", "cree", "creee"),
    "ajouter": ("ajouter", "ajout", "add", "rajouter"),
    "echec": (
        "echec", "echecs", "echoue", "echouee", "echouees", "echouer", "fail", "failed", "failure", "failing", "ko",
        "plante", "planter", "crash", "casse", "rouge", "marche pas", "marche plus", "fonctionne pas",
        "fonctionne plus", "not working", "doesn t work", "does not work", "broken",
    ),
    "verrou": (
        "verrou", "verrouille", "verrouiller", "verouille", "lock", "locked", "deverrouiller", "fige", "figee",
    ),
    "reprovision": (
        "reprovisionner", "reprovisionnement", "provisionnement", "provisionner", "replay", "rejouer", "reprovision",
        "reprovisioning",
    ),
    "notification": (
        "notification", "notifications", "notif", "notifs", "abonnement", "abonner", "subscribe", "prevenir",
        "prevenu", "averti", "avertir",
    ),
    "ticket": ("ticket", "tickets", "incident", "incidents", "demande de support", "signaler"),
    "support": ("support", "assistance", "serviceteam", "service team", "equipe support", "hotline"),
    "url": (
        "url", "urls", "lien", "liens", "adresse", "link", "links", "favori", "favoris", "marque page", "marque pages",
        "bookmark", "bookmarks",
    ),
    "variable": ("variable", "variables", "var", "vars"),
    "quota": ("quota", "quotas", "ressource", "ressources", "resource", "resources"),
    "application": (
        "application", "applications", "appli", "applis", "app", "apps", "backend", "backends", "frontend", "frontends",
        "microservice", "microservices",
    ),
    "pull": ("pull", "tirer", "pulling"),
    "imagepullbackoff": ("imagepullbackoff", "errimagepull"),  # the error, not any git pull
    "kyverno": ("kyverno", "policies", "admission"),
    "nexus": ("nexus", "artifactory"),
    "maven": ("maven", "mvn", "pom"),
    "npm": ("npm", "npmrc", "yarn", "pnpm"),
    "secret": ("secret", "secrets", "coffre", "coffre fort", "sops"),
    "vault": ("vault", "hashicorp vault"),
    "gitlab": ("gitlab", "gitlab ci", "gitlab-ci"),
    "github": ("github", "github actions", "github action", "gh actions"),
    "compte": ("compte", "comptes", "account", "accounts", "inscription", "inscrire", "keycloak"),
    "nom": (
        "nom", "noms", "nommage", "name", "naming", "renommer", "rename", "slug", "s appelle", "nomme", "nommer",
    ),  # not "appellation": its stem, "appel", would read "appeler une API" as a question of names
    "commande": ("commande", "commandes", "command", "commands", "slash"),
    "bot": ("bot", "chatbot", "robot conversationnel"),
    "lenteur": ("lenteur", "lenteurs", "lent", "lente", "lents", "ralenti", "ralentissement", "rame", "latence"),
    "readonly": ("readonly", "read only", "lecture seule", "sans rien modifier", "en consultation"),
    "disponible": ("disponible", "disponibles", "dispo", "dispos", "disponibilite", "available"),
    "aide": ("aide", "aider", "help", "aidez"),
    "fuite": ("fuite", "fuiter", "leak", "leaked", "expose", "exposer", "compromis", "compromise"),
    "expiration": (
        "expiration", "expire", "expirer", "expiree", "expirera", "expiry", "valable", "validite", "perime",
        "peremption",
    ),
    "panne": (
        "panne", "pannes", "hs", "down", "indisponible", "indisponibles", "indisponibilite", "inaccessible",
        "hors service",
    ),
    "bloque": ("bloque", "bloquer", "bloquee", "bloques", "blocage", "blocages", "bloquant", "bloquante"),
    "max": ("max", "maximum", "maximal", "maximale", "maximaux", "maxi", "limite de taille"),
    "irreversible": ("irreversible", "definitif", "definitive", "definitivement", "restaurer", "restauration"),
    "ministere": ("ministere", "ministeres", "mi", "minint", "ministere de l interieur"),
    "compatible": ("compatible", "compatibles", "compatibilite", "eligible", "eligibles", "eligibilite"),
    "onboarding": ("onboarding", "onboarder", "onboard", "embarquer", "embarquement"),
    "planif": (
        "planifier", "planification", "planifie", "cron", "cronjob", "cronjobs", "crontab", "tous les soirs",
        "toutes les nuits", "chaque nuit", "chaque soir", "tous les jours", "quotidien", "quotidienne", "nightly",
        "schedule", "scheduled",
    ),
    "auto": (
        "auto", "automatique", "automatiquement", "automatiques", "automatiser", "automatisation", "automatic",
        "automatically", "automatisee",
    ),
    "maj": ("maj", "mise a jour", "mises a jour", "mettre a jour", "update", "upgrade"),
    # English words for what the French articles say (one-word French variants only: a French phrase
    # would take its words away from the articles' other terms).
    "rollback": (
        "rollback", "roll back", "rolled back", "revert", "annuler le deploiement", "annuler le dernier deploiement",
        "annuler la mise en prod", "annuler la mep",
    ),
    "rafraichir": ("rafraichir", "refresh", "relire", "recharger", "actualiser"),
    "crashloopbackoff": (
        "crashloopbackoff", "crash loop", "keeps crashing", "keep crashing", "restart loop", "redemarre en boucle",
        "redemarrage en boucle", "plante en boucle", "crashe en boucle",
    ),
    "delai": ("delai", "delais", "combien de temps", "how long"),
    "sla": (
        "sla", "engagement de service", "engagements de service", "response time", "response times",
        "temps de reponse", "delai de reponse", "delais de reponse", "service level",
    ),
    "plateforme": ("plateforme", "plateformes", "platform", "platforms"),
    "push": ("push", "pushed", "pushes", "pousser", "pousse", "poussee", "pushe"),
    "declencher": (
        "declencher", "declenche", "declenchee", "declenchement", "starts", "started", "kick off", "part pas",
        "partent pas", "lancer", "lance", "lancee", "lancement",
    ),
    "nettoyer": ("nettoyer", "nettoyage", "nettoie", "menage", "faire le menage"),
    "manuel": ("manuel", "manuelle", "manuellement", "a la main", "manual", "manually", "by hand"),
    "difference": (
        "difference", "differences", "different", "differente", "differents", "differentes", "vs", "versus",
        "comparer", "comparaison",
    ),
    "artefact": (
        "artefact", "artefacts", "artifact", "artifacts", "bibliotheque", "bibliotheques", "librairie", "librairies",
        "library", "libraries", "paquet", "paquets", "package", "packages",
    ),
    "dossier": ("dossier", "dossiers", "repertoire", "repertoires", "directory", "directories", "folder", "folders"),
    "contact": ("contact", "contacts", "contacter", "s adresser", "interlocuteur", "interlocuteurs"),
    "prerequis": ("prerequis", "prerequisite", "prerequisites", "requirement", "requirements", "exigence", "exigences"),
    "horaire": ("horaire", "horaires", "hours", "opening hours"),
}
# fmt: on


def fold(text: str) -> str:
    """Lowercase, accents removed (``Déploiement`` → ``deploiement``), ligatures opened."""
    text = text.lower().replace("œ", "oe").replace("æ", "ae").replace("ß", "ss")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """The folded words of ``text``: letters and digits only, so apostrophes and dashes split words."""
    return _WORD.findall(fold(text))


_STEMMER = snowballstemmer.stemmer("french")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """The Snowball French stem of a folded word.

    Folding hides the accent Snowball looks for in feminine past participles (``stockées`` becomes
    ``stockees``, stemmed ``stocke`` while ``stocker`` gives ``stock``): ``-ee``/``-ees`` are first
    brought back to ``-e``.
    """
    if len(word) > 5 and word.endswith("ees"):
        word = word[:-2]
    elif len(word) > 4 and word.endswith("ee"):
        word = word[:-1]
    return str(_STEMMER.stemWord(word))


def _build_synonyms() -> tuple[dict[tuple[str, ...], tuple[str, ...]], dict[str, str], int]:
    phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
    single: dict[str, str] = {}
    for canonical, variants in SYNONYMS.items():
        for variant in (canonical, *variants):
            parts = tuple(words(variant))
            if len(parts) > 1:
                phrases[parts] = (canonical,)
            elif parts:
                single[parts[0]] = canonical
                stemmed = stem(parts[0])
                if len(stemmed) >= 3:  # "ns" stems to "n": a short stem would catch unrelated words
                    single.setdefault(stemmed, canonical)
    # A variant's English forms (sync → synced, redeploy → redeployed), unless a form is a word already
    # (mi → "mis", a stop word): short variants are skipped, their forms are too often French words.
    for canonical, variants in SYNONYMS.items():
        for variant in (canonical, *variants):
            if " " in variant or len(variant) < 4:
                continue
            for form in inflections(variant):
                if form not in single and form not in STOP_WORDS and stem(form) not in single:
                    single[form] = canonical
    for phrase in STOP_PHRASES:
        phrases[tuple(words(phrase))] = ()
    longest = max((len(p) for p in phrases), default=1)
    return phrases, single, longest


_PHRASES, _SINGLE, _LONGEST_PHRASE = _build_synonyms()
_CANONICAL = frozenset(SYNONYMS)
_ENGLISH: dict[str, tuple[str, ...]] = {}  # an English word's forms → the terms of its French (bot.lexicon)


def _analyse_words(folded: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    out: list[tuple[str, tuple[str, ...]]] = []
    i = 0
    while i < len(folded):
        for size in range(min(_LONGEST_PHRASE, len(folded) - i), 1, -1):
            terms = _PHRASES.get(tuple(folded[i : i + size]))
            if terms is not None:
                out.append((" ".join(folded[i : i + size]), terms))  # a stop phrase has no terms
                i += size
                break
        else:
            word = folded[i]
            i += 1
            if word in _SINGLE:
                out.append((word, (_SINGLE[word],)))
            elif word in _ENGLISH:
                out.append((word, _ENGLISH[word]))
            elif word in STOP_WORDS or (len(word) < 2 and not word.isdigit()):
                continue
            else:
                stemmed = stem(word)
                out.append((word, (_SINGLE.get(stemmed, stemmed),)))
    return out


def _build_english() -> int:
    """Read :data:`bot.lexicon.ENGLISH` as the French beside each word; returns the longest phrase.

    A synonym group's own English variants come first; a French word that is a stop word makes its
    English one dropped too."""
    for english, french in ENGLISH.items():
        terms = tuple(t for _, found in _analyse_words(words(french)) for t in found)
        for form in inflections(english):
            parts = tuple(words(form))
            if len(parts) > 1:
                _PHRASES.setdefault(parts, terms)
            elif parts and parts[0] not in _SINGLE:
                _ENGLISH.setdefault(parts[0], terms)
    return max(len(p) for p in _PHRASES)


_LONGEST_PHRASE = _build_english()


def analyse(text: str) -> list[tuple[str, str]]:
    """``(word, term)`` pairs: each kept folded word (or phrase) of ``text`` and its search term."""
    return [(word, term) for word, terms in _analyse_words(words(text)) for term in terms]


def normalize(text: str) -> list[str]:
    """Search terms of ``text``: folded, stop words dropped, stemmed, synonyms made canonical.

    >>> normalize("Comment synchroniser mon dépôt ?")
    ['synchro', 'depot']
    """
    return [term for _, term in analyse(text)]


SPECIFIC_TERMS = frozenset(term for word in SPECIFIC_WORDS for term in normalize(word))


def truncate(question: str, limit: int = MAX_QUESTION_CHARS) -> str:
    """``question`` cut to ``limit`` characters, at the last word boundary before it."""
    if len(question) <= limit:
        return question
    cut = question[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > limit // 2 else cut


# -- articles -----------------------------------------------------------------------------------------


class ArticleError(ValueError):
    """An article of the knowledge base is malformed; the message names the file."""


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    tags: tuple[str, ...]
    commands: tuple[str, ...]
    links: tuple[Link, ...]
    summary: str
    body: str
    path: Path
    errors: tuple[str, ...] = ()  # error messages it answers, as the tools print them (optional)


def _string_list(value: object, key: str, where: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ArticleError(f"{where}: '{key}' must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


# -- platform-dependent text ----------------------------------------------------------------------------

#: What an article may say about the platform's setup, with the value of a platform that configures
#: nothing beyond the defaults. ``{{registry}}`` is the registry's product name; ``url.*`` a service's web
#: address ("" when the service is not configured: wrap it in ``{{if url.vault}}…{{end}}``).
TEMPLATE_DEFAULTS: dict[str, str] = {
    "registry": "Quay",
    "registry.host": "",
    "control": "direct",
    "url.gitlab": "",
    "url.vault": "",
    "url.sonarqube": "",
    "url.argocd": "",
    "url.registry": "",
    "url.nexus": "",
    "url.console": "",
}
TEMPLATE_NAMES = frozenset(TEMPLATE_DEFAULTS)
# ``{{name}}``, ``{{if name}}``, ``{{if name=value}}``, ``{{if name!=value}}``, ``{{else}}``, ``{{end}}``.
_TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TAG_BODY = re.compile(r"\s*(?:(if)\s+([\w.]+)\s*(?:(!?=)\s*([\w.-]+))?|(else)|(end)|([\w.]+))\s*")


def render_template(text: str, values: dict[str, str] | None = None, where: str | Path = "") -> str:
    """``text`` with its platform tags replaced (pure, no evaluation: names and literal comparisons only).

    A name outside :data:`TEMPLATE_NAMES`, a malformed tag or an unbalanced block raises
    :class:`ArticleError`, so that a typo in ``kb/`` fails when the base is loaded, not in a reply.
    Comparisons ignore case (``registry=harbor`` holds for ``Harbor``).
    """
    given = dict(values or {})
    unknown = set(given) - TEMPLATE_NAMES
    if unknown:
        raise ArticleError(f"unknown template values: {', '.join(sorted(unknown))}")
    env = {**TEMPLATE_DEFAULTS, **given}
    out: list[str] = []
    # One frame per open block: (its condition holds, we are in its else branch).
    stack: list[tuple[bool, bool]] = []

    def shown() -> bool:
        return all(held != in_else for held, in_else in stack)

    def known(name: str) -> str:
        if name not in TEMPLATE_NAMES:
            known_names = ", ".join(sorted(TEMPLATE_NAMES))
            raise ArticleError(f"{where}: unknown placeholder {{{{{name}}}}} (known: {known_names})")
        return env[name]

    position = 0
    for tag in _TAG.finditer(text):
        if shown():
            out.append(text[position : tag.start()])
        position = tag.end()
        body = _TAG_BODY.fullmatch(tag.group(1))
        if body is None:
            raise ArticleError(f"{where}: malformed tag {tag.group(0)[:60]!r}")
        is_if, name, operator, literal, is_else, is_end, placeholder = body.groups()
        if is_if:
            value = known(name)
            if operator is None:
                held = bool(value)
            else:
                held = (value.lower() == literal.lower()) == (operator == "=")
            stack.append((held, False))
        elif is_else:
            if not stack or stack[-1][1]:
                raise ArticleError(f"{where}: {{{{else}}}} without its {{{{if}}}}")
            stack[-1] = (stack[-1][0], True)
        elif is_end:
            if not stack:
                raise ArticleError(f"{where}: {{{{end}}}} without its {{{{if}}}}")
            stack.pop()
        else:
            value = known(placeholder)
            if shown():
                out.append(value)
    if stack:
        raise ArticleError(f"{where}: {{{{if}}}} not closed by {{{{end}}}}")
    out.append(text[position:])
    return "".join(out)


def placeholders(text: str) -> set[str]:
    """The names a text's tags use (placeholders and conditions), known or not."""
    names = set()
    for tag in _TAG.finditer(text):
        body = _TAG_BODY.fullmatch(tag.group(1))
        if body is not None and (body.group(2) or body.group(7)):
            names.add(body.group(2) or body.group(7))
    return names


def parse_article(text: str, path: Path, values: dict[str, str] | None = None) -> Article:
    """One article: TOML front matter between ``+++`` lines, then the markdown body; its platform tags
    rendered with ``values`` first (:func:`render_template`)."""
    lines = render_template(text, values, path).lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "+++":
        raise ArticleError(f"{path}: the file must start with a '+++' line opening the front matter")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "+++")
    except StopIteration:
        raise ArticleError(f"{path}: the front matter is not closed by a '+++' line") from None
    try:
        meta: dict[str, Any] = tomllib.loads("\n".join(lines[1:end]))
    except tomllib.TOMLDecodeError as exc:
        raise ArticleError(f"{path}: invalid TOML front matter: {exc}") from None
    missing = [k for k in REQUIRED_FIELDS if k not in meta]
    if missing:
        raise ArticleError(f"{path}: front matter lacks {', '.join(missing)}")
    article_id, title, summary = meta["id"], meta["title"], meta["summary"]
    if not isinstance(article_id, str) or not ID_PATTERN.match(article_id):
        raise ArticleError(f"{path}: 'id' must be kebab-case (lowercase letters, digits and dashes)")
    if article_id != path.stem:
        raise ArticleError(f"{path}: 'id' is {article_id!r} but the file is named {path.name!r}")
    for key, value in (("title", title), ("summary", summary)):
        if not isinstance(value, str) or not value.strip():
            raise ArticleError(f"{path}: '{key}' must be a non-empty string")
    tags = _string_list(meta["tags"], "tags", path)
    if not tags:
        raise ArticleError(f"{path}: 'tags' must not be empty")
    commands = _string_list(meta["commands"], "commands", path)
    if any(not c.startswith("/cpn") for c in commands):
        raise ArticleError(f"{path}: every entry of 'commands' must start with '/cpn'")
    raw_links = meta["links"]
    if not isinstance(raw_links, list):
        raise ArticleError(f"{path}: 'links' must be a list of {{title, url}} tables")
    links = []
    for entry in raw_links:
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("title"), str)
            or not isinstance(entry.get("url"), str)
            or not entry["url"].startswith("https://")
        ):
            raise ArticleError(f"{path}: each link needs a 'title' and an https 'url'")
        links.append(Link(entry["title"].strip(), entry["url"].strip()))
    body = "\n".join(lines[end + 1 :]).strip()
    if not body:
        raise ArticleError(f"{path}: the article has no body")
    errors = _string_list(meta.get("errors", []), "errors", path)
    if any(len(words(e)) < 2 and len(e.strip()) < 5 for e in errors):
        raise ArticleError(f"{path}: each of 'errors' needs two words or one of five characters (specific enough)")
    return Article(article_id, title.strip(), tags, commands, tuple(links), summary.strip(), body, path, errors)


def load_articles(directory: str | Path, values: dict[str, str] | None = None) -> list[Article]:
    """Every ``*.md`` article of ``directory``, rendered for the platform ``values`` describe (see
    :data:`TEMPLATE_DEFAULTS`), sorted by id; refuses a malformed one or a duplicate id."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ArticleError(f"{folder}: not a directory")
    articles: list[Article] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.md")):
        article = parse_article(path.read_text(encoding="utf-8"), path, values)
        if article.id in seen:
            raise ArticleError(f"{path}: id {article.id!r} already used by {seen[article.id]}")
        seen[article.id] = path
        articles.append(article)
    return articles


# -- typo correction ----------------------------------------------------------------------------------


def _deletes(word: str, distance: int) -> set[str]:
    """Every string made from ``word`` by deleting up to ``distance`` characters."""
    found = {word}
    frontier = {word}
    for _ in range(distance):
        frontier = {w[:i] + w[i + 1 :] for w in frontier for i in range(len(w))}
        found |= frontier
    return found


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance (insertions, deletions, substitutions, transpositions)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def allowed_typos(word: str) -> int:
    """How many mistakes a word of this length may carry and still be recognised."""
    if len(word) < MIN_TYPO_LENGTH:
        return 0
    return 1 if len(word) < MIN_TWO_TYPOS_LENGTH else 2


class Speller:
    """Corrects a word the corpus does not know into the closest one it does (symmetric deletes).

    Stop words are known words too: a mistyped one (``coment``, ``pourqoi``) is dropped like the word
    itself, rather than corrected into the nearest term of the articles (``moment``)."""

    def __init__(
        self, vocabulary: dict[str, str], frequency: dict[str, int], stop: frozenset[str] = frozenset()
    ) -> None:
        # Short stop words have real words one letter away (machin, machine): only longer ones count.
        stops = (w for w in stop if len(w) >= MIN_STOP_TYPO_LENGTH)
        self.vocabulary = {**dict.fromkeys(stops, ""), **vocabulary}  # folded word → search term ("": a stop word)
        self.frequency = frequency  # search term → number of articles using it
        self.index: dict[str, set[str]] = {}
        for word in self.vocabulary:
            for deleted in _deletes(word, allowed_typos(word)):
                self.index.setdefault(deleted, set()).add(word)

    def correct(self, word: str) -> str | None:
        """The search term of the closest known word ("" for a stop word, preferred at equal
        distance), or None when none is close enough."""
        budget = allowed_typos(word)
        if budget == 0:
            return None
        candidates: set[str] = set()
        for deleted in _deletes(word, budget):
            candidates |= self.index.get(deleted, set())
        best: tuple[int, bool, int, str] | None = None
        for candidate in candidates:
            if abs(len(candidate) - len(word)) > budget:
                continue
            distance = edit_distance(word, candidate)
            if distance > min(budget, allowed_typos(candidate)):
                continue
            term = self.vocabulary[candidate]
            rank = (distance, term != "", -self.frequency.get(term, 0), candidate)
            if best is None or rank < best:
                best = rank
        return None if best is None else self.vocabulary[best[3]]


# -- search -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    article: Article
    score: float  # bm25 relevance, higher is better (SQLite's bm25() with its sign flipped)
    confidence: float  # in [0, 1]: share of the question's information the article covers


@dataclass(frozen=True)
class Answer:
    question: str
    known: bool
    best: Hit | None = None
    related: tuple[Hit, ...] = ()
    terms: tuple[str, ...] = ()  # the search terms the question gave, after typo correction
    nearest: Hit | None = None  # when not known: the closest article, under the threshold (for logs)

    @property
    def confidence(self) -> float:
        return self.best.confidence if self.best else 0.0

    @property
    def offer_ticket(self) -> bool:
        """When the base does not know, the bot offers to open a ticket with the question."""
        return not self.known


@dataclass(frozen=True)
class Query:
    """A question made search terms; ``corrected`` are the terms that come from a typo correction."""

    terms: tuple[str, ...]
    corrected: frozenset[str] = frozenset()


ARTICLES_TABLE = "kb_articles"
VOCABULARY_TABLE = "kb_vocabulary"
FTS_COLUMNS = ("n_title", "n_tags", "n_summary", "n_body")
FTS_TABLE = f"{ARTICLES_TABLE}_fts"
# Only constant names are formatted into these statements; user text is always a bound parameter.
_SELECT_ARTICLES = (
    "SELECT rowid, id, title, tags, commands, links, summary, body, path, errors, "  # noqa: S608
    f"{', '.join(FTS_COLUMNS)} FROM {ARTICLES_TABLE}"
)
_SELECT_VOCABULARY = f"SELECT word, term FROM {VOCABULARY_TABLE}"  # noqa: S608


@dataclass
class _Corpus:
    articles: dict[str, Article]
    rowids: dict[int, str]
    titles: dict[str, frozenset[str]]  # id → terms of the title
    topical: frozenset[str]  # terms used in some article's title or tags: the base's own vocabulary
    fields: dict[str, tuple[frozenset[str], frozenset[str]]]  # id → (terms outside body, all terms)
    frequency: dict[str, int]
    speller: Speller
    total: int = field(default=0)
    signatures: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (folded words, article id)

    def idf(self, term: str) -> float:
        df = self.frequency.get(term, 0)
        if df == 0:
            return NOISE_TERM_WEIGHT if any(c.isdigit() for c in term) else UNKNOWN_TERM_WEIGHT
        return math.log(1 + (self.total - df + 0.5) / (df + 0.5))

    def weight(self, term: str) -> float:
        """A term's weight in the confidence: its idf, lowered for words no title or tag uses."""
        if term in SPECIFIC_TERMS:
            return self.idf(term) * SPECIFIC_FACTOR
        if term in self.frequency and term not in self.topical:
            return self.idf(term) * GENERIC_FACTOR
        return self.idf(term)


def _quote(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


class KnowledgeBase:
    """The articles indexed in SQLite (FTS5 through sqlite-utils), searched with bm25."""

    def __init__(self, db: sqlite_utils.Database) -> None:
        self.db = db
        self._corpus: _Corpus | None = None

    # indexing

    def index(self, articles: Iterable[Article]) -> int:
        """Replace the whole index with ``articles``; returns how many were indexed."""
        items = list(articles)
        ids = [a.id for a in items]
        if len(ids) != len(set(ids)):
            raise ArticleError("duplicate article ids: " + ", ".join(sorted({i for i in ids if ids.count(i) > 1})))
        rows = []
        vocabulary: dict[str, str] = {}
        for article in items:
            analysed = {
                # the id is a second title, a slug chosen for what the article answers ("build-non-declenche")
                "n_title": analyse(article.title + " " + article.id.replace("-", " ")),
                "n_tags": analyse(" . ".join(article.tags)),
                "n_summary": analyse(article.summary),
                "n_body": analyse(_plain(article.body)),
            }
            for pairs in analysed.values():
                for word, term in pairs:
                    if " " not in word:
                        vocabulary.setdefault(word, term)
            rows.append(
                {
                    "id": article.id,
                    "title": article.title,
                    "tags": json.dumps(list(article.tags), ensure_ascii=False),
                    "commands": json.dumps(list(article.commands), ensure_ascii=False),
                    "links": json.dumps([{"title": k.title, "url": k.url} for k in article.links], ensure_ascii=False),
                    "summary": article.summary,
                    "body": article.body,
                    "path": str(article.path),
                    "errors": json.dumps(list(article.errors), ensure_ascii=False),
                    **{column: " ".join(t for _, t in pairs) for column, pairs in analysed.items()},
                }
            )
        table, vocabulary_table = self.db.table(ARTICLES_TABLE), self.db.table(VOCABULARY_TABLE)
        with self.db.conn:
            if table.exists():
                table.disable_fts()
            table.drop(ignore=True)
            vocabulary_table.drop(ignore=True)
            table.create(
                {
                    "id": str,
                    "title": str,
                    "tags": str,
                    "commands": str,
                    "links": str,
                    "summary": str,
                    "body": str,
                    "path": str,
                    "errors": str,
                    **dict.fromkeys(FTS_COLUMNS, str),
                },
                pk="id",
            )
            table.insert_all(rows)
            vocabulary_table.create({"word": str, "term": str}, pk="word")
            vocabulary_table.insert_all({"word": w, "term": t} for w, t in sorted(vocabulary.items()))
            table.enable_fts(list(FTS_COLUMNS), tokenize="unicode61", replace=True)
        self._corpus = None
        return len(rows)

    # reading

    def _load(self) -> _Corpus:
        if self._corpus is not None:
            return self._corpus
        articles: dict[str, Article] = {}
        rowids: dict[int, str] = {}
        fields: dict[str, tuple[frozenset[str], frozenset[str]]] = {}
        titles: dict[str, frozenset[str]] = {}
        topical: set[str] = set()
        frequency: dict[str, int] = {}
        signatures: list[tuple[tuple[str, ...], str]] = []
        if self.db.table(ARTICLES_TABLE).exists():
            for row in self.db.execute(_SELECT_ARTICLES).fetchall():
                rowid, article_id, title, tags, commands, links, summary, body, path, errors, *normalised = row
                articles[article_id] = Article(
                    article_id,
                    title,
                    tuple(json.loads(tags)),
                    tuple(json.loads(commands)),
                    tuple(Link(x["title"], x["url"]) for x in json.loads(links)),
                    summary,
                    body,
                    Path(path),
                    tuple(json.loads(errors)),
                )
                for signature in articles[article_id].errors:
                    signatures.append((tuple(words(signature)), article_id))
                rowids[rowid] = article_id
                head = frozenset(" ".join(normalised[:3]).split())
                every = head | frozenset(normalised[3].split())
                fields[article_id] = (head, every)
                titles[article_id] = frozenset(normalised[0].split())
                topical.update(normalised[0].split())
                topical.update(normalised[1].split())
                for term in every:
                    frequency[term] = frequency.get(term, 0) + 1
        vocabulary: dict[str, str] = {}
        if self.db.table(VOCABULARY_TABLE).exists():
            vocabulary = dict(self.db.execute(_SELECT_VOCABULARY).fetchall())
        for word, term in _SINGLE.items():
            if term in frequency:
                vocabulary.setdefault(word, term)
        speller = Speller(vocabulary, frequency, STOP_WORDS)
        signatures.sort(key=lambda s: -len(s[0]))  # the longest (most precise) signature first
        self._corpus = _Corpus(
            articles, rowids, titles, frozenset(topical), fields, frequency, speller, len(articles), signatures
        )
        return self._corpus

    @property
    def articles(self) -> list[Article]:
        return sorted(self._load().articles.values(), key=lambda a: a.id)

    def query(self, question: str) -> Query:
        """The search terms of ``question``, typos corrected, at most :data:`MAX_QUERY_TERMS` of them."""
        corpus = self._load()
        terms: list[str] = []
        corrected: set[str] = set()
        for word, term in analyse(truncate(question)):
            unknown = term not in corpus.frequency and " " not in word and term not in _CANONICAL
            if unknown and (base := _base_form(word, corpus.frequency)) is not None:
                term, unknown = base, False
            if unknown:
                guess = corpus.speller.correct(word)
                if guess == "":  # a mistyped stop word
                    continue
                if guess is not None:
                    term = guess
                    corrected.add(guess)
            if term not in terms:
                terms.append(term)
            if len(terms) >= MAX_QUERY_TERMS:
                break
        return Query(tuple(terms), frozenset(corrected))

    def terms(self, question: str) -> list[str]:
        """The distinct search terms of ``question``, typos corrected."""
        return list(self.query(question).terms)

    def confidence(self, query: Query, article_id: str) -> float:
        """Share of the weight of the query's terms that the article covers.

        A term weighs its idf (:data:`UNKNOWN_TERM_WEIGHT` when no article uses it). A term found only in
        the body counts :data:`BODY_ONLY_FACTOR` of its weight; a corrected term :data:`CORRECTED_FACTOR`.
        """
        corpus = self._load()
        head, every = corpus.fields[article_id]
        total = covered = 0.0
        for term in query.terms:
            weight = corpus.weight(term)
            total += weight
            factor = CORRECTED_FACTOR if term in query.corrected else 1.0
            if term in head:
                covered += weight * factor
            elif term in every:
                covered += weight * factor * BODY_ONLY_FACTOR
        return min(1.0, covered / total) if total else 0.0

    def pasted_error(self, question: str) -> str | None:
        """The article whose listed error message (``errors``) the question quotes, longest first.

        A signature's words must come in order, with at most :data:`ERROR_GAP` words between two of them
        (the numbers and names a real message carries)."""
        said = words(truncate(question))
        for signature, article_id in self._load().signatures:
            if _in_order(signature, said):
                return article_id
        return None

    def _ranked(self, query: Query, quoted: str | None = None) -> list[Hit]:
        """Candidates from FTS5 (bm25), re-ranked by bm25 relative to the best, confidence and title match.

        FTS5 gives a term found in more than half of the articles an idf of almost nothing: a question made
        only of such terms ("créer un projet avec le bot") ties on bm25, and the share of its terms found
        in an article's title then decides.
        """
        corpus = self._load()
        searchable = [t for t in query.terms if t in corpus.frequency]
        if not searchable:
            return [Hit(corpus.articles[quoted], 0.0, ERROR_CONFIDENCE)] if quoted else []
        weights = ", ".join(str(float(w)) for w in COLUMN_WEIGHTS)
        sql = (
            f"SELECT rowid, bm25({FTS_TABLE}, {weights}) AS rank FROM {FTS_TABLE} "  # noqa: S608 - constants only
            f"WHERE {FTS_TABLE} MATCH ? ORDER BY rank LIMIT ?"
        )
        match = " OR ".join(_quote(t) for t in searchable)
        rows = self.db.execute(sql, [match, CANDIDATES]).fetchall()
        if not rows:
            return [Hit(corpus.articles[quoted], 0.0, ERROR_CONFIDENCE)] if quoted else []
        best = max(-rank for _, rank in rows) or 1.0
        scored = []
        for rowid, rank in rows:
            article_id = corpus.rowids[rowid]
            confidence = self.confidence(query, article_id)
            relevance = -rank
            in_title = sum(1 for t in query.terms if t in corpus.titles[article_id]) / len(query.terms)
            combined = (max(relevance, 0.0) / best) ** RELEVANCE_EXPONENT * confidence * (1 + TITLE_BONUS * in_title)
            scored.append((combined, relevance, confidence, article_id))
        scored.sort(key=lambda s: (-s[0], -s[1], s[3]))
        hits = [Hit(corpus.articles[a], round(r, 4), round(c, 4)) for _, r, c, a in scored]
        if quoted:  # the message the question quotes decides, whatever else it says
            found = next((h for h in hits if h.article.id == quoted), None)
            relevance = found.score if found else 0.0
            confidence = max(found.confidence if found else 0.0, ERROR_CONFIDENCE)
            hits = [Hit(corpus.articles[quoted], relevance, confidence)] + [h for h in hits if h.article.id != quoted]
        return hits

    def search(self, question: str, limit: int = 3) -> list[Hit]:
        """The ``limit`` best articles for ``question``, best first (may be empty)."""
        if limit <= 0:
            return []
        return self._ranked(self.query(question), self.pasted_error(question))[:limit]

    def _confident(self, query: Query, hit: Hit) -> bool:
        """Whether ``hit`` answers: its confidence, or enough of the question's known terms covered."""
        if hit.confidence >= CONFIDENCE_THRESHOLD:
            return True
        corpus = self._load()
        every = corpus.fields[hit.article.id][1]
        covered = sum(1 for t in query.terms if t in every)  # an article's terms are known ones
        return hit.confidence >= LOW_CONFIDENCE_THRESHOLD and covered >= COVERED_TERMS

    def answer(self, question: str) -> Answer:
        """The best article when confident enough, with up to two related ones; else ``known=False``."""
        query = self.query(question)
        hits = self._ranked(query, self.pasted_error(question))
        if not hits or not self._confident(query, hits[0]):
            return Answer(question, False, None, (), query.terms, hits[0] if hits else None)
        related = tuple(h for h in hits[1:] if h.confidence >= RELATED_THRESHOLD)[:2]
        return Answer(question, True, hits[0], related, query.terms)


def _base_forms(word: str) -> list[str]:
    """What an inflected ``word`` may come from, most likely first: the French stemmer leaves the
    third person plural alone (``echouent``, ``plantent``), English forms have no stemmer here
    (``committed``, ``crashing``)."""
    forms: list[str] = []
    if len(word) > 5 and word.endswith("ent") and not word.endswith("ment"):
        forms += [word[:-3] + "er", word[:-2]]  # échouent → échouer, plantent → plante
    if len(word) > 4 and word.endswith("ed"):
        forms += [word[:-2], word[:-1]] + ([word[:-3]] if word[-3] == word[-4] else [])  # committed → commit
    if len(word) > 5 and word.endswith("ing"):
        forms += [word[:-3], word[:-3] + "e"] + ([word[:-4]] if word[-4] == word[-5] else [])
    if len(word) > 4 and word.endswith("s"):
        forms += [word[:-1]] + ([word[:-2]] if word.endswith("es") else [])
    return forms


def _base_form(word: str, known: dict[str, int]) -> str | None:
    """The term of the first of ``word``'s :func:`_base_forms` that the corpus knows, if any."""
    for form in _base_forms(word):
        for _, terms in _analyse_words([form]):
            if terms and (terms[0] in known or terms[0] in _CANONICAL):
                return terms[0]
    return None


def _in_order(signature: tuple[str, ...], said: list[str], gap: int = ERROR_GAP) -> bool:
    """Whether ``signature``'s words appear in ``said`` in order, at most ``gap`` words apart."""
    if not signature:
        return False
    for start, word in enumerate(said):
        if word != signature[0]:
            continue
        at, ok = start, True
        for wanted in signature[1:]:
            window = said[at + 1 : at + 2 + gap]
            if wanted not in window:
                ok = False
                break
            at = at + 1 + window.index(wanted)
        if ok:
            return True
    return False


_MARKUP = re.compile(r"`{3}[a-z]*|[#*_>`|]")


def _plain(markdown: str) -> str:
    """Markdown without its markup characters (link targets and code stay: they are words too)."""
    return _MARKUP.sub(" ", markdown)


def open_knowledge_base(
    directory: str | Path, db: sqlite_utils.Database | None = None, values: dict[str, str] | None = None
) -> KnowledgeBase:
    """Load ``directory`` rendered with ``values`` and index it in ``db`` (an in-memory database by default)."""
    base = KnowledgeBase(db if db is not None else sqlite_utils.Database(memory=True))
    base.index(load_articles(directory, values))
    return base
