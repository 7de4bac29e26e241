"""The files committed into each project's ``mirror`` repository (platform-facts §2.3).

The pipeline pulls the external repository named by ``PROJECT_NAME`` and pushes it into the
internal one; ``mirror.sh`` is what a team's own CI can call instead of the bot's sync API.
"""

from __future__ import annotations

GITLAB_CI = """\
# Géré par cpn-bot : toute modification est écrasée à la prochaine réconciliation.
variables:
  PROJECT_NAME:
    description: "Dépôt interne à synchroniser"
    value: ""
  GIT_BRANCH_DEPLOY:
    description: "Branche à synchroniser"
    value: "main"
  SYNC_ALL:
    description: "Synchroniser toutes les branches et tous les tags"
    value: "false"

include:
  - project: "$CATALOG_PATH"
    file: mirror.yml
    ref: main

repo_pull_sync:
  extends: .repo_pull_sync
  only:
    - api
    - triggers
    - web
    - schedules
"""

MIRROR_SH = """\
#!/bin/sh
# Déclenche la synchronisation d'un dépôt interne depuis la CI de l'équipe.
# Utilisation : ./mirror.sh -a GITLAB_URL -i MIRROR_PROJECT_ID -g TRIGGER_TOKEN -r REPOSITORY [-b BRANCH]
set -eu
BRANCH=main
while getopts a:b:g:i:r: opt; do
  case $opt in
    a) API_URL=$OPTARG ;;
    b) BRANCH=$OPTARG ;;
    g) TOKEN=$OPTARG ;;
    i) PROJECT_ID=$OPTARG ;;
    r) REPOSITORY=$OPTARG ;;
    *) exit 2 ;;
  esac
done
# --form-string, not -F: with -F, a value starting with @ or < makes curl send a local file.
curl -X POST --fail --form-string "token=$TOKEN" --form-string ref=main \\
  --form-string "variables[GIT_BRANCH_DEPLOY]=$BRANCH" --form-string "variables[PROJECT_NAME]=$REPOSITORY" \\
  "$API_URL/api/v4/projects/$PROJECT_ID/trigger/pipeline"
"""

FILES = {".gitlab-ci.yml": GITLAB_CI, "mirror.sh": MIRROR_SH}
