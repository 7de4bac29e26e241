"""Refresh the vendored specs: keep the operations the bot uses, and every definition they reach.

Run by hand, with the upstream files checked out (see SOURCES.md)::

    python tests/contracts/specs/extract.py mattermost <mattermost-api-reference>/v4/source
    python tests/contracts/specs/extract.py argocd <argo-cd>/assets/swagger.json
    python tests/contracts/specs/extract.py harbor <harbor>/api/v2.0/swagger.yaml

The output is the upstream text, cut down, as JSON: nothing is rewritten.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent

# (path template as upstream writes it, methods)
OPERATIONS: dict[str, list[tuple[str, list[str]]]] = {
    "mattermost": [
        ("/api/v4/users/{user_id}", ["get"]),
        ("/api/v4/users/username/{username}", ["get"]),
        ("/api/v4/users/{user_id}/teams", ["get"]),
        ("/api/v4/system/ping", ["get"]),
        ("/api/v4/channels/{channel_id}", ["get"]),
        ("/api/v4/channels/direct", ["post"]),
        ("/api/v4/channels/{channel_id}/members/{user_id}", ["get"]),
        ("/api/v4/teams/{team_id}/channels/name/{channel_name}", ["get"]),
        ("/api/v4/channels/{channel_id}/posts", ["get"]),
        ("/api/v4/posts", ["post"]),
        ("/api/v4/posts/ephemeral", ["post"]),
        ("/api/v4/posts/{post_id}", ["get"]),
        ("/api/v4/posts/{post_id}/patch", ["put"]),
        ("/api/v4/actions/dialogs/open", ["post"]),
    ],
    "argocd": [
        ("/api/v1/session", ["post"]),
        ("/api/v1/projects", ["post"]),
        ("/api/v1/projects/{name}", ["get", "delete"]),
        ("/api/v1/projects/{project.metadata.name}", ["put"]),
        ("/api/v1/applications", ["get", "post"]),
        ("/api/v1/applications/{name}", ["get", "delete"]),
        ("/api/v1/applications/{application.metadata.name}", ["put"]),
        ("/api/v1/applications/{name}/sync", ["post"]),
        ("/api/v1/applications/{name}/rollback", ["post"]),
        ("/api/v1/applications/{name}/operation", ["delete"]),
        ("/api/v1/applications/{applicationName}/resource-tree", ["get"]),
    ],
    "harbor": [
        ("/health", ["get"]),
        ("/projects", ["get", "head", "post"]),
        ("/projects/{project_name_or_id}", ["get", "put", "delete"]),
        ("/projects/{project_name_or_id}/members", ["get", "post"]),
        ("/projects/{project_name_or_id}/members/{mid}", ["get", "put", "delete"]),
        ("/robots", ["get", "post"]),
        ("/robots/{robot_id}", ["get", "put", "patch", "delete"]),
        ("/projects/{project_name}/repositories", ["get"]),
        ("/projects/{project_name}/repositories/{repository_name}", ["get", "delete"]),
        ("/projects/{project_name}/repositories/{repository_name}/artifacts", ["get"]),
        ("/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}", ["get", "delete"]),
        ("/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/tags", ["get", "post"]),
        (
            "/projects/{project_name}/repositories/{repository_name}/artifacts/{reference}/additions/vulnerabilities",
            ["get"],
        ),
        ("/projects/{project_name_or_id}/webhook/policies", ["get", "post"]),
        ("/projects/{project_name_or_id}/webhook/policies/{webhook_policy_id}", ["get", "put", "delete"]),
        ("/users/current", ["get"]),
    ],
}


def _load(service: str, source: Path) -> dict[str, Any]:
    if service != "mattermost":
        text = source.read_text(encoding="utf-8")
        loaded: dict[str, Any] = json.loads(text) if source.suffix == ".json" else yaml.safe_load(text)
        return loaded
    # Mattermost splits its spec per tag: introduction (header), definitions (components), and
    # one file of path items per tag, concatenated under ``paths:`` by its build.
    spec: dict[str, Any] = yaml.safe_load((source / "introduction.yaml").read_text(encoding="utf-8"))
    spec.update(yaml.safe_load((source / "definitions.yaml").read_text(encoding="utf-8")))
    spec["paths"] = {}
    for part in sorted(source.glob("*.yaml")):
        if part.name in ("introduction.yaml", "definitions.yaml"):
            continue
        spec["paths"].update(yaml.safe_load("paths:\n" + part.read_text(encoding="utf-8"))["paths"] or {})
    return spec


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


def _pointer(spec: dict[str, Any], ref: str) -> tuple[list[str], Any]:
    keys = ref.removeprefix("#/").split("/")
    node: Any = spec
    for key in keys:
        node = node[key.replace("~1", "/").replace("~0", "~")]
    return keys, node


def subset(service: str, spec: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in spec.items() if k not in ("paths", "definitions", "components", "tags", "x-tagGroups")}
    keep["paths"] = {}
    for template, methods in OPERATIONS[service]:
        item = spec["paths"][template]
        keep["paths"][template] = {k: v for k, v in item.items() if k in methods or k == "parameters"}
    pending, seen = _refs(keep), set()
    while pending:
        ref = pending.pop()
        if ref in seen or not ref.startswith("#/"):
            continue
        seen.add(ref)
        keys, node = _pointer(spec, ref)
        target = keep
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = node
        pending |= _refs(node)
    if "info" in keep and isinstance(keep["info"], dict):
        keep["info"] = {k: keep["info"][k] for k in ("title", "version") if k in keep["info"]}
    return keep


def main() -> None:
    service, source = sys.argv[1], Path(sys.argv[2])
    out = HERE / f"{service}.json"
    out.write_text(json.dumps(subset(service, _load(service, source)), indent=1, sort_keys=True) + "\n")
    print(f"{out}: {out.stat().st_size} bytes")


if __name__ == "__main__":
    main()
