"""Holds the tests' GitHub API stand-ins to GitHub's official OpenAPI description.

The description is npm's ``@octokit/openapi`` (the version pinned by
``tests/workflows/openapi/package-lock.json``), installed by ``make openapi`` into
``.tools/openapi``; it is never committed. ``spec()`` loads it once per session (about 13 MB of
JSON) and compiles one validator per schema on first use.

- ``Spec.check_request`` finds the operation by the description's path templates (the most
  literal template wins, as on GitHub: ``/issues/comments/{id}`` before ``/issues/{number}``) and
  checks the path and query parameters (types, enums, required ones, and no undocumented ones)
  and the JSON body. A request on no documented route answers 404, like GitHub; any other
  problem answers 422.
- ``Spec.check_response`` checks that the status is one the operation documents and that the
  body matches its schema. GitHub's description omits many error statuses (a 403 on another
  user's comment is real but undocumented), so an undocumented 4xx only has to be a
  ``basic-error`` body.

OpenAPI 3.0's ``nullable`` becomes JSON Schema's ``null`` type; ``format`` is not checked.
"""

from __future__ import annotations

import functools
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

REPO_ROOT = Path(__file__).resolve().parents[2]
SPEC_FILE = REPO_ROOT / ".tools/openapi/node_modules/@octokit/openapi/generated/api.github.com.json"
SPEC_URI = "urn:github-openapi"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_SCHEMA = "#/components/schemas/basic-error"


@dataclass(frozen=True)
class Operation:
    """One documented operation: ``method`` and path ``template``, where it sits in the
    description (``pointer``), and its parameters by (location, name)."""

    method: str
    template: str
    operation_id: str
    pointer: str
    parameters: dict[tuple[str, str], dict[str, Any]]


@dataclass(frozen=True)
class Checked:
    """The result of checking a request: its operation (None when no route matches), the HTTP
    status GitHub would answer with when there are ``problems``, and the problems."""

    operation: Operation | None
    status: int
    problems: list[str]


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` as JSON Schema (draft 4) says it, in place."""
    if isinstance(node, list):
        for item in node:
            _nullable_to_json_schema(item)
    elif isinstance(node, dict):
        for value in node.values():
            _nullable_to_json_schema(value)
        if node.get("nullable") is True:
            del node["nullable"]
            if "enum" in node and None not in node["enum"]:
                node["enum"] = [*node["enum"], None]
            if isinstance(node.get("type"), str):
                node["type"] = [node["type"], "null"]
            elif "type" not in node:
                rest = dict(node)
                node.clear()
                node["anyOf"] = [{"type": "null"}, rest]
    return node


def _route(template: str) -> re.Pattern[str]:
    """A template's regex, one group per parameter in order (names such as
    ``enterprise-team`` are not Python group names)."""
    parts = re.split(r"(\{[^}/]+\})", template)
    regex = "".join("([^/]+)" if p.startswith("{") else re.escape(p) for p in parts)
    return re.compile(f"^{regex}$")


def _specificity(template: str) -> tuple[int, list[int]]:
    """Sort key: more literal segments first, then literal segments earlier."""
    literal = [0 if segment.startswith("{") else 1 for segment in template.split("/")]
    return (-sum(literal), [-x for x in literal])


def _coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A query or path value as its schema's type, or the raw string if it is not one."""
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "integer" in kinds and re.fullmatch(r"-?[0-9]+", raw):
        return int(raw)
    if "number" in kinds and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", raw):
        return float(raw)
    if "boolean" in kinds and raw in ("true", "false"):
        return raw == "true"
    if "array" in kinds:
        return raw.split(",")
    return raw


class Spec:
    """GitHub's REST API description, loaded once (see ``spec()``)."""

    def __init__(self, path: Path = SPEC_FILE) -> None:
        started = time.perf_counter()
        self.document: dict[str, Any] = _nullable_to_json_schema(
            json.loads(path.read_text("utf-8"))
        )
        self.version = str(self.document["info"]["version"])
        resource = referencing.Resource.from_contents(
            self.document, default_specification=referencing.jsonschema.DRAFT4
        )
        self._registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            SPEC_URI, resource
        )
        self._routes: list[tuple[re.Pattern[str], str]] = sorted(
            ((_route(t), t) for t in self.document["paths"]), key=lambda r: _specificity(r[1])
        )
        self._validators: dict[str, jsonschema.protocols.Validator] = {}
        self.load_seconds = time.perf_counter() - started

    # -- lookups -------------------------------------------------------------------------

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.at(node["$ref"])
        return node

    def at(self, pointer: str) -> Any:
        """The node at a ``#/...`` JSON pointer of the description."""
        node: Any = self.document
        for token in pointer.removeprefix("#/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        return node

    def validator(self, pointer: str) -> jsonschema.protocols.Validator:
        """The (cached) validator of the schema at ``pointer``."""
        if pointer not in self._validators:
            self._validators[pointer] = jsonschema.Draft4Validator(
                {"$ref": f"{SPEC_URI}{pointer}"}, registry=self._registry
            )
        return self._validators[pointer]

    def _schema_problems(self, pointer: str, value: Any, where: str) -> list[str]:
        errors = sorted(self.validator(pointer).iter_errors(value), key=lambda e: e.path)
        return [
            f"{where} at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:200]}"
            for e in errors[:5]
        ]

    def operation(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        """The documented operation for ``method`` on ``path`` and its path parameters."""
        for pattern, template in self._routes:
            found = pattern.match(path)
            if not found:
                continue
            item = self.document["paths"][template]
            if method.lower() not in item:
                return None
            names = re.findall(r"\{([^}/]+)\}", template)
            values = [urllib.parse.unquote(v) for v in found.groups()]
            return self._operation(method.lower(), template), dict(zip(names, values, strict=True))
        return None

    @functools.cache  # noqa: B019 - one Spec per session
    def _operation(self, method: str, template: str) -> Operation:
        pointer = f"#/paths/{_escape(template)}/{method}"
        op = self.at(pointer)
        item = self.document["paths"][template]
        parameters: dict[tuple[str, str], dict[str, Any]] = {}
        for where, params in (
            ("item", item.get("parameters", [])),
            ("op", op.get("parameters", [])),
        ):
            for index, param in enumerate(params):
                base = f"#/paths/{_escape(template)}" + ("" if where == "item" else f"/{method}")
                resolved = self._resolve(param)
                ref = param.get("$ref")
                schema_pointer = f"{ref}/schema" if ref else f"{base}/parameters/{index}/schema"
                parameters[(resolved["in"], resolved["name"])] = {
                    "required": bool(resolved.get("required")),
                    "schema": self._resolve(resolved.get("schema", {})),
                    "pointer": schema_pointer,
                }
        return Operation(method, template, op.get("operationId", ""), pointer, parameters)

    # -- checks --------------------------------------------------------------------------

    def check_request(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes | None
    ) -> Checked:
        """What GitHub's description says about this request (see the module's docstring)."""
        found = self.operation(method, path)
        if found is None:
            return Checked(None, 404, [f"{method} {path}: no such operation in the description"])
        op, path_values = found
        name = f"{method} {op.template} ({op.operation_id})"
        problems: list[str] = []
        given = {("path", k): [v] for k, v in path_values.items()}
        given.update({("query", k): v for k, v in query.items()})
        for key, values in given.items():
            param = op.parameters.get(key)
            if param is None:
                problems.append(f"{name}: undocumented {key[0]} parameter {key[1]!r}")
                continue
            if len(values) > 1 and param["schema"].get("type") != "array":
                problems.append(f"{name}: {key[0]} parameter {key[1]!r} given {len(values)} times")
            value = _coerce(values[-1], param["schema"])
            problems += self._schema_problems(
                param["pointer"], value, f"{name}: {key[0]} parameter {key[1]!r}"
            )
        for key, param in op.parameters.items():
            if param["required"] and key[0] in ("path", "query") and key not in given:
                problems.append(f"{name}: required {key[0]} parameter {key[1]!r} is missing")
        problems += self._body_problems(op, name, body)
        return Checked(op, 422, problems)

    def _body_problems(self, op: Operation, name: str, body: bytes | None) -> list[str]:
        declared = self.at(op.pointer).get("requestBody")
        if not body:
            required = declared is not None and self._resolve(declared).get("required")
            return [f"{name}: the request body is required"] if required else []
        if declared is None:
            return [f"{name}: takes no request body"]
        try:
            value = json.loads(body)
        except ValueError:
            return [f"{name}: the request body is not JSON"]
        ref = declared.get("$ref", f"{op.pointer}/requestBody")
        content = self._resolve(declared).get("content", {})
        if "application/json" not in content:
            return [f"{name}: the request body is not one of {sorted(content)}"]
        schema = f"{ref}/content/application~1json/schema"
        return self._schema_problems(schema, value, f"{name}: request body")

    def check_response(self, op: Operation, status: int, body: bytes) -> list[str]:
        """Problems with a response the stand-in sends for ``op`` (empty when it conforms)."""
        name = f"{op.method.upper()} {op.template} ({op.operation_id})"
        responses = self.at(op.pointer)["responses"]
        if str(status) in responses:
            ref = f"{op.pointer}/responses/{status}"
            declared = self._resolve(responses[str(status)])
            if "$ref" in responses[str(status)]:
                ref = responses[str(status)]["$ref"]
            content = declared.get("content", {})
            if "application/json" not in content:
                return (
                    [f"{name}: status {status} has no body, got {len(body)} bytes"] if body else []
                )
            schema = f"{ref}/content/application~1json/schema"
        elif 400 <= status < 500:
            schema = ERROR_SCHEMA
        else:
            return [f"{name}: status {status} is not one of {sorted(responses)}"]
        try:
            value = json.loads(body)
        except ValueError:
            return [f"{name}: the {status} response body is not JSON"]
        return self._schema_problems(schema, value, f"{name}: {status} response body")

    def example(self, pointer: str) -> Any:
        """A fresh copy of a documented example (``#/components/examples/...``)'s value."""
        return json.loads(json.dumps(self._resolve(self.at(pointer))["value"]))


@functools.cache
def spec() -> Spec:
    """The session's one ``Spec`` (raises FileNotFoundError when ``make openapi`` has not run)."""
    return Spec()


def available() -> bool:
    """Whether ``make openapi`` has installed the description."""
    return SPEC_FILE.is_file()
