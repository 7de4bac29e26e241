"""English words of the platform's questions, in the French the articles use (for bot.knowledge).

The articles are written in French; a question in English would otherwise be made of words no article
uses, each weighing as much as a word of another subject (a recipe, a printer), and the base would say it
does not know. Each English word (or phrase) below is read as the French word beside it, before stemming
and synonyms, so ``rules`` finds ``règles`` and ``back up`` finds ``sauvegarde``.

Only words an English-speaking developer uses about a DevSecOps platform are here, chosen from what the
articles are about, not from any question set. Words that are also French (``image``, ``service``,
``test``, ``version``, ``change``, ``note``, ``place``…) are left out: they already match, or a French
question would be misread. Inflections are generated (``rule`` gives ``rules``; ``fail`` gives
``failed``, ``failing``), so each entry is written once, in its base form.

:data:`GENERIC_WORDS` are words of everyday language that say nothing of the subject (``matin``,
``yesterday``): they are dropped like stop words, so that "depuis ce matin" does not make a question look
like one of another subject.
"""

from __future__ import annotations

# fmt: off
#: English base form → the French word of the articles (folded, accents optional).
ENGLISH: dict[str, str] = {
    # what people do
    "access": "acces", "activate": "activer", "allow": "autoriser", "apply": "appliquer", "approve": "valider",
    "ask": "demander", "assign": "attribuer", "backup": "sauvegarde", "back up": "sauvegarde", "block": "bloquer",
    "check": "verifier", "choose": "choisir", "clean": "nettoyer", "compile": "compiler", "configure": "configurer",
    "connect": "connecter", "copy": "copier", "customize": "personnaliser",
    "customise": "personnaliser", "debug": "diagnostiquer", "declare": "declarer", "define": "definir",
    "disable": "desactiver", "download": "telecharger", "edit": "modifier", "enable": "activer",
    "encrypt": "chiffrer", "exceed": "depasser", "expose": "exposer", "fix": "corriger", "force": "forcer",
    "grant": "donner", "give": "donner", "host": "heberger", "ignore": "ignorer", "import": "importer",
    "inject": "injecter", "install": "installer", "invite": "inviter", "keep": "conserver", "kill": "tuer",
    "launch": "lancer", "link": "lier", "list": "lister", "lock": "verrou", "log in": "connexion",
    "login": "identifiant", "sign in": "connexion", "migrate": "migration", "modify": "modifier", "mount": "monter",
    "move": "deplacer", "open": "ouvrir", "override": "surcharger", "pass": "passer", "promote": "promouvoir",
    "protect": "proteger", "provide": "fournir", "provision": "provisionner", "publish": "publier",
    "rebuild": "reconstruire", "receive": "recevoir", "refuse": "refuser",
    "reject": "refuser", "deny": "refuser", "release": "version", "renew": "renouveler", "repair": "reparer",
    "replace": "remplacer", "report": "signaler", "request": "demander", "restart": "redemarrer",
    "restore": "restaurer", "retry": "relancer", "revoke": "revoquer", "rotate": "renouveler", "run": "lancer",
    "save": "sauvegarder", "schedule": "planifier", "see": "voir", "send": "envoyer",
    "set up": "configurer", "setup": "configurer", "share": "partager", "show": "afficher", "simulate": "simuler",
    "skip": "ignorer", "start": "demarrer", "stop": "arreter", "store": "stocker", "submit": "soumettre",
    "verify": "verifier", "view": "consulter", "watch": "surveiller", "write": "ecrire", "roll out": "deployer",
    "ship": "livrer", "go live": "production", "unlock": "deverrouiller", "unblock": "debloquer",
    "mock": "bouchonner", "fake": "bouchonner", "rename": "renommer", "retain": "conserver",
    # what things are
    "account": "compte", "address": "adresse", "alert": "alerte", "allowed": "autorise",
    "authentication": "authentification", "base image": "image de base", "binary": "binaire", "branch": "branche",
    "certificate": "certificat", "cert": "certificat", "config": "configuration", "contractor": "prestataire",
    "cost": "cout", "database": "base de donnees", "data": "donnees", "default": "defaut",
    "dependency": "dependance", "disk": "disque", "email": "mail",
    "e mail": "mail", "error": "erreur", "external": "externe", "outside": "exterieur", "file": "fichier",
    "filesystem": "systeme de fichiers", "file system": "systeme de fichiers", "graph": "tableau de bord",
    "group": "groupe", "guide": "tutoriel", "health": "sante", "history": "historique", "hosting": "hebergement",
    "identifier": "identifiant", "internal": "interne", "issue": "probleme", "key": "cle", "limit": "limite",
    "memory": "memoire", "merge request": "mr", "merge": "mr", "mistake": "erreur", "name": "nom",
    "network": "reseau", "number": "numero", "parameter": "parametre", "path": "chemin",
    "private": "prive", "quality": "qualite", "gate": "quality gate", "repo": "depot", "requirement": "prerequis",
    "result": "resultat", "rule": "regle", "security": "securite", "server": "serveur", "setting": "parametre",
    "size": "taille", "stage": "etape", "step": "etape", "state": "etat", "status": "etat", "storage": "stockage",
    "teammate": "membre", "colleague": "collegue", "coworker": "collegue", "newcomer": "nouvel arrivant",
    "tool": "outil", "tutorial": "tutoriel", "user": "utilisateur", "value": "valeur",
    "values file": "fichier de valeurs", "warning": "avertissement", "weakness": "faille",
    "vulnerability": "vulnerabilite", "vulnerable": "vulnerabilite", "waiver": "derogation",
    "exception": "derogation", "replica": "replicas", "rights": "droits", "admin": "administrateur",
    "administrator": "administrateur", "environment": "environnement",
    "monitoring": "supervision", "uptime": "disponibilite", "outage": "panne", "downtime": "panne",
    "timeout": "delai", "delay": "delai", "deadline": "delai", "naming": "nommage", "convention": "regle",
    "uppercase": "majuscule", "lowercase": "minuscule", "character": "caractere", "length": "longueur",
    "channel": "canal", "answer": "reponse", "response": "reponse", "help desk": "support", "helpdesk": "support",
    "service level": "engagement de service", "read only": "lecture seule", "read-only": "lecture seule",
    "writable": "ecriture", "non root": "rootless", "nonroot": "rootless", "certificate path": "certificat",
    "trust": "confiance", "truststore": "certificat", "mirror": "miroir", "external ci": "ci externe",
    "target": "cible", "mapping": "correspondance", "upgrade": "mise a jour", "latest": "dernier",
    "last": "dernier", "previous": "precedent", "old": "ancien", "new": "nouveau", "own": "propre",
    "custom": "personnalise", "third party": "tiers", "provider": "prestataire", "vendor": "prestataire",
    "supplier": "prestataire", "output": "sortie", "standard output": "sortie", "snapshot": "sauvegarde",
    "delete": "supprimer", "deletion": "suppression", "removal": "suppression", "onboard": "onboarding",
    "sandbox": "bac a sable", "coverage": "couverture", "insufficient": "insuffisant", "call": "appeler",
    "ministry": "ministere", "securely": "securite", "kept": "conserver",
    # how things go
    "blocked": "bloque", "broken": "casse", "bad": "mauvais", "wrong": "mauvais", "missing": "manquant",
    "required": "obligatoire", "mandatory": "obligatoire", "refused": "refuse", "rejected": "refuse",
    "denied": "refuse", "forbidden": "interdit", "expired": "expire", "slow": "lent", "stuck": "bloque",
    "down": "panne", "unavailable": "indisponible", "unreachable": "injoignable", "reachable": "joignable",
    "reach": "joindre", "same": "identique", "daily": "quotidien",
    "weekly": "planifier", "every night": "toutes les nuits", "secure": "securite", "safe": "securite",
    "permanent": "definitif", "permanently": "definitivement", "undo": "annuler", "roll back": "rollback",
}

#: Everyday words that say nothing of the subject: times, days, how often. Dropped like stop words.
GENERIC_WORDS: frozenset[str] = frozenset(
    """
    matin matinee soir soiree midi aprem semaine semaines lundi mardi mercredi jeudi vendredi samedi
    dimanche tantot hier demain combien longtemps souvent parfois soudain soudainement brusquement encore
    morning evening tonight today yesterday tomorrow week weeks monday tuesday wednesday thursday friday
    saturday sunday suddenly sometimes often since ago recently lately currently cannot cant won wont isn
    aren doesn didn hasn haven please kindly guys hey
    """.split()
)
# fmt: on


def inflections(base: str) -> set[str]:
    """The forms of an English word people type: plural, past, -ing (``rule`` → ``rules``…).

    A phrase inflects its last word (``merge request`` → ``merge requests``)."""
    head, _, last = base.rpartition(" ")
    forms = {last, last + "s", last + "ed", last + "ing"}
    if last.endswith("e"):
        forms |= {last + "d", last[:-1] + "ing"}
    if last.endswith(("s", "x", "sh", "ch")):
        forms |= {last + "es"}
    if last.endswith("y") and len(last) > 2 and last[-2] not in "aeiou":
        forms |= {last[:-1] + "ies", last[:-1] + "ied"}
    if len(last) >= 3 and last[-1] not in "aeiouwxy" and last[-2] in "aeiou" and last[-3] not in "aeiou":
        forms |= {last + last[-1] + "ed", last + last[-1] + "ing"}  # stop → stopped, stopping
    return {f"{head} {form}" if head else form for form in forms}
