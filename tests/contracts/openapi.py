"""Requests and responses checked against the services' own OpenAPI/Swagger specs (vendored in specs/).

A :class:`Spec` finds the operation a request is for (method and path template), then says what
the real spec would find wrong with it: an operation that does not exist, a path or query
parameter it does not declare or of the wrong type, a body missing a required field or with a
field of the wrong type, a status the operation does not declare, a response body not of its
schema. Swagger 2.0 (Argo CD, Harbor) and OpenAPI 3.0 (Mattermost) alike.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from jsonschema import Draft4Validator, ValidationError

SPECS = Path(__file__).parent / "specs"

# Where an upstream spec says otherwise than its own server does, the server wins: each erratum
# names the pointer, the value the server really takes or gives, and the server source that shows it.
ERRATA: dict[str, list[tuple[str, Any, str]]] = {
    "harbor": [
        (
            "/paths/~1projects~1{project_name}~1repositories~1{repository_name}~1artifacts~1{reference}"
            "~1additions~1vulnerabilities/get/responses/200/schema",
            {"type": "object"},
            "goharbor/harbor:src/server/v2.0/handler/artifact.go GetVulnerabilitiesAddition answers a JSON "
            "object {mime type: report}, not a string",
        ),
        (
            "/definitions/ExtraAttrs/additionalProperties",
            {},
            "goharbor/harbor:src/controller/artifact/processor/base/manifest.go copies the image config's "
            "architecture, os, author (strings) and config (an object) into extra_attrs",
        ),
        (
            "/paths/~1projects~1{project_name_or_id}~1members/post/responses/404",
            {"$ref": "#/responses/404"},
            "goharbor/harbor:src/core/auth/authenticator.go SearchAndOnBoardUser: an unknown username is "
            "NotFoundError 'user X is not found' (404)",
        ),
        (
            "/paths/~1robots/post/responses/409",
            {"$ref": "#/responses/409"},
            "goharbor/harbor:src/pkg/robot/dao/dao.go Create: a taken name is a ConflictError (409)",
        ),
        (
            "/paths/~1projects~1{project_name_or_id}~1webhook~1policies/post/responses/409",
            {"$ref": "#/responses/409"},
            "goharbor/harbor:src/pkg/notification/policy/dao/dao.go Create: a taken name is a ConflictError (409)",
        ),
        # go-swagger refuses a parameter against the spec's own constraints (maxLength, maximum)
        # with 422, which src/lib/http/error.go apiError passes on as UNPROCESSABLE_ENTITY.
        (
            "/paths/~1projects/post/responses/422",
            {"$ref": "#/responses/422"},
            "goharbor/harbor:src/lib/http/error.go apiError (go-openapi validation errors keep their 422)",
        ),
        (
            "/paths/~1robots/get/responses/422",
            {"$ref": "#/responses/422"},
            "goharbor/harbor:src/lib/http/error.go apiError (go-openapi validation errors keep their 422)",
        ),
    ],
    "mattermost": [
        (
            "/paths/~1api~1v4~1posts~1{post_id}~1patch/put/requestBody/content/application~1json/schema/properties/props",
            {"type": "object"},
            "mattermost/mattermost:server/public/model/post.go PostPatch.Props is *StringInterface (an object)",
        ),
        (
            "/components/schemas/Timezone/properties/useAutomaticTimezone",
            {"type": "string", "enum": ["true", "false", ""]},
            "mattermost/mattermost:server/public/model/user.go User.Timezone is a StringMap (strings only)",
        ),
    ],
}


@dataclass
class Exchange:
    """One request an adapter sent and the response an emulator gave, as the recorder saw them."""

    service: str
    method: str
    path: str
    query: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response_body: bytes = b""

    def __str__(self) -> str:
        return f"{self.method} {self.path}{'?' + self.query if self.query else ''} → {self.status}"


@dataclass(frozen=True)
class Operation:
    template: str
    method: str
    spec: dict[str, Any]
    parameters: tuple[dict[str, Any], ...]


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema says it (jsonschema ignores the keyword)."""
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        if node.get("nullable") is True and isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


def _describe(error: ValidationError) -> str:
    """Where and which rule, without the (long) instance jsonschema puts in its message."""
    where = "/".join(map(str, error.absolute_path)) or "(body)"
    rule = json.dumps(error.validator_value, ensure_ascii=False)
    return f"{where}: {error.validator} {rule[:120]} (got {type(error.instance).__name__})"


def _literal_segments(template: str) -> int:
    return sum(1 for part in template.split("/") if part and not part.startswith("{"))


class Spec:
    def __init__(self, name: str) -> None:
        self.name = name
        self.document: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text(encoding="utf-8"))
        self.swagger2 = str(self.document.get("swagger", "")).startswith("2")
        for pointer, value, _source in ERRATA.get(name, []):
            *parents, last = [k.replace("~1", "/").replace("~0", "~") for k in pointer.strip("/").split("/")]
            node = self.document
            for key in parents:
                node = node[key]
            node[last] = value
        if not self.swagger2:
            self.document = _nullable(self.document)
        self.base = str(self.document.get("basePath", "")).rstrip("/")
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in sorted(self.document["paths"], key=_literal_segments, reverse=True):
            # A parameter is one segment; literal segments win over parameters (``/posts/ephemeral``).
            pattern = re.sub(r"\\\{[^/]+?\\\}", "(?P<p>[^/]+)", re.escape(self.base + template))
            pattern = pattern.replace("(?P<p>", "(")
            self._routes.append((re.compile(pattern + "$"), template))

    # -- lookup -------------------------------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                item = self.document["paths"][template]
                spec = item.get(method.lower())
                if spec is None:
                    continue
                shared = [self.resolve(p) for p in item.get("parameters", [])]
                own = [self.resolve(p) for p in spec.get("parameters", [])]
                named = {(p["in"], p["name"]): p for p in shared + own}
                return Operation(template, method.lower(), spec, tuple(named.values()))
        return None

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while isinstance(node, dict) and "$ref" in node:
            target: Any = self.document
            for key in node["$ref"].removeprefix("#/").split("/"):
                target = target[key.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def _validate(self, schema: dict[str, Any], value: Any) -> list[str]:
        root = {**schema, "definitions": self.document.get("definitions", {})}
        if "components" in self.document:
            root["components"] = self.document["components"]
        validator = Draft4Validator(root)
        return [_describe(e) for e in validator.iter_errors(value)]

    def _type_ok(self, param: dict[str, Any], raw: str) -> bool:
        kind = (param.get("schema") or param).get("type", "string")
        if kind == "integer":
            return re.fullmatch(r"-?[0-9]+", raw) is not None
        if kind == "boolean":
            return raw in ("true", "false")
        if kind == "number":
            return re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", raw) is not None
        return True

    # -- checks -------------------------------------------------------------------------------

    def check_request(self, exchange: Exchange) -> list[str]:
        op = self.operation(exchange.method, exchange.path)
        if op is None:
            return [f"{exchange}: no such operation in {self.name}'s spec"]
        problems = []
        template_parts = (self.base + op.template).split("/")
        for part, value in zip(template_parts, exchange.path.split("/"), strict=False):
            if part.startswith("{"):
                param = next((p for p in op.parameters if p["in"] == "path" and "{" + p["name"] + "}" == part), None)
                if param is None:
                    problems.append(f"{exchange}: path parameter {part} not declared")
                elif not self._type_ok(param, value):
                    problems.append(f"{exchange}: path parameter {part}={value!r} is not {param.get('type')}")
        declared = {p["name"]: p for p in op.parameters if p["in"] == "query"}
        for name, value in parse_qsl(exchange.query, keep_blank_values=True):
            if name not in declared:
                problems.append(
                    f"{exchange}: query parameter {name!r} not declared by {op.method.upper()} {op.template}"
                )
            elif not self._type_ok(declared[name], value):
                problems.append(f"{exchange}: query parameter {name}={value!r} is of the wrong type")
        for name, param in declared.items():
            if param.get("required") and name not in dict(parse_qsl(exchange.query)):
                problems.append(f"{exchange}: required query parameter {name!r} missing")
        schema = self._request_schema(op)
        if schema is not None:
            try:
                body = json.loads(exchange.request_body or b"null")
            except ValueError:
                return [*problems, f"{exchange}: request body is not JSON"]
            problems += [f"{exchange}: request {p}" for p in self._validate(schema, body)]
        return problems

    def _request_schema(self, op: Operation) -> dict[str, Any] | None:
        if self.swagger2:
            body = next((p for p in op.parameters if p["in"] == "body"), None)
            return body.get("schema") if body else None
        request = self.resolve(op.spec.get("requestBody") or {})
        schema = ((request.get("content") or {}).get("application/json") or {}).get("schema")
        return schema if isinstance(schema, dict) else None

    def check_response(self, exchange: Exchange) -> list[str]:
        op = self.operation(exchange.method, exchange.path)
        if op is None:
            return []  # check_request reported it
        responses = op.spec.get("responses", {})
        declared = responses.get(str(exchange.status)) or responses.get("default")
        if declared is None:
            return [f"{exchange}: status {exchange.status} not declared (declared: {', '.join(sorted(responses))})"]
        declared = self.resolve(declared)
        if self.swagger2:
            schema = declared.get("schema")
        else:
            schema = ((declared.get("content") or {}).get("application/json") or {}).get("schema")
        if not schema or not exchange.response_body:
            return []
        if not exchange.response_headers.get("content-type", "").startswith("application/json"):
            given = exchange.response_headers.get("content-type")
            return [f"{exchange}: the spec declares a JSON body, the response is {given}"]
        try:
            body = json.loads(exchange.response_body)
        except ValueError:
            return [f"{exchange}: response body is not JSON"]
        return [f"{exchange}: response {p}" for p in self._validate(schema, body)]
