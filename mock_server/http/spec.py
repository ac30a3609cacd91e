"""The OpenAPI contract drives routing and request validation; schemas are compiled to Python once, at import."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
import yaml
from werkzeug.datastructures import MultiDict

from mock_server.domain.errors import ValidationError
from mock_server.http.exchange import is_secret_key

# openapi/ at the repository root, reached through the package so that installed wheels carry it too.
SPEC_DIR = Path(__file__).resolve().parent.parent / "_data" / "openapi"
VENDOR_SPEC = SPEC_DIR / "dpa-platform.yaml"
ADMIN_SPEC = SPEC_DIR / "admin.yaml"
_METHODS = ("get", "post", "put", "patch", "delete")
_NOT_JSON_SCHEMA = (
    "example",
    "examples",
    "xml",
    "discriminator",
    "readOnly",
    "writeOnly",
    "deprecated",
    "externalDocs",
    "nullable",
)
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# The emulator's own wider choices on top of the contract (docs/spec-decisions.md), applied when it loads the
# contract and never written into openapi/dpa-platform.yaml, which holds what the document promises and judges
# every server in the kit. operationId -> {extra request media type: the contract's media type whose schema
# validates it}, so an extra encoding carries the same fields under the same rules.
EMULATOR_BODIES: dict[str, dict[str, str]] = {
    # D3: the document shows a JSON token request; OAuth clients send a form by habit, so the token call takes
    # one too (and with it multipart/form-data, which read_body reads through the same binder as every form).
    "getToken": {"application/x-www-form-urlencoded": "application/json"},
}
# D23: `null` for an optional field means absent. A JSON body's top-level nulls are dropped before it is
# checked (http/pipeline.py); nested optional fields take null here instead: component schema -> its optional
# properties that may be null (Java/Jackson clients serialise an unset modelId as null, in execute's JSON body
# and in a scene's modelVarReq form field alike). The domain reads such a null as the field left out.
EMULATOR_NULLABLE: dict[str, tuple[str, ...]] = {"ModelVarReq": ("modelId", "mapParam")}


def _deref(node: Any, root: dict[str, Any], names: bool = False) -> Any:
    """Inline local $refs and turn OpenAPI 3.0 schema quirks into plain JSON Schema."""
    if isinstance(node, dict):
        if "$ref" in node and not names:
            target: Any = root
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return _deref(target, root)
        if names:  # the keys of `properties` are field names, never OpenAPI keywords
            return {k: _deref(v, root) for k, v in node.items()}
        out = {k: _deref(v, root, names=(k == "properties")) for k, v in node.items() if k not in _NOT_JSON_SCHEMA}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_deref(v, root) for v in node]
    return node


def _with_nulls(document: dict[str, Any], nullable: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
    """A copy of `document` whose named component schemas let the listed optional properties be null (the
    document itself is left as the contract says: it is what the emulator serves as its contract)."""
    if not nullable:
        return document
    widened = copy.deepcopy(document)
    schemas = widened.get("components", {}).get("schemas", {})
    for name, props in nullable.items():
        schema = schemas.get(name)
        if schema is None:
            raise ValueError(f"no component schema {name!r} to let null into")
        for prop in props:
            if prop not in schema.get("properties", {}) or prop in schema.get("required", ()):
                raise ValueError(f"{name}.{prop}: not an optional property, so null cannot mean absent")
            # anyOf keeps the property's own rule (and its wording of a refusal) for every non-null value.
            schema["properties"][prop] = {"anyOf": [{"type": "null"}, schema["properties"][prop]]}
    return widened


def _message(error: jsonschema.ValidationError, prefix: str = "") -> str:
    if error.validator == "anyOf" and error.context:
        # A field that may also be null (EMULATOR_NULLABLE): word the refusal by the field's own rule.
        others = [e for e in error.context if not (e.validator == "type" and e.validator_value == "null")]
        if others and len(others) < len(error.context):
            return _message(jsonschema.exceptions.best_match(others), prefix)
    path = prefix + "".join(
        f"[{p}]" if isinstance(p, int) else (f".{p}" if i or prefix else str(p))
        for i, p in enumerate(error.absolute_path)
    )
    # A validator sets validator_value on every error it yields (the stubs allow it Unset for hand-made errors):
    # the isinstance checks narrow it to what each keyword's value is in any JSON Schema, never failing here.
    if error.validator == "required" and isinstance(error.validator_value, list):
        missing = [r for r in error.validator_value if isinstance(error.instance, dict) and r not in error.instance]
        name = missing[0] if missing else error.validator_value[0]
        return f"{path + '.' if path else ''}{name}: is required"
    if isinstance(error.instance, (dict, list)) or any(is_secret_key(p) for p in error.absolute_path):
        # Never the value itself: it may be or hold a secret (client_secret, code, a token), and a whole
        # object quoted back is no help either. The field and the problem are enough.
        return f"{path or 'body'}: {_problem_without_value(error)}"
    if error.validator == "enum" and isinstance(error.validator_value, list):
        return f"{path}: {error.instance!r} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator == "type" and error.instance is None:
        return f"{path}: is required"
    return f"{path or 'body'}: {error.message}"


def _problem_without_value(error: jsonschema.ValidationError) -> str:
    rule, expected = error.validator, error.validator_value
    if rule == "type":
        return f"must be of type {' or '.join(expected) if isinstance(expected, list) else expected}"
    if rule in (
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "pattern",
        "format",
        "minProperties",
        "maxProperties",
    ):
        return f"does not meet {rule} {expected!r}"
    if rule == "additionalProperties":
        message: str = error.message  # names the unexpected field names, never values
        return message
    return f"does not match the schema ({rule})"


class RequestSchema:
    """One request schema: compiled to Python once (fastjsonschema) to decide, about 20 times faster than
    jsonschema's interpreting validator, which is kept to word a refusal."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        # As Draft7Validator without a format checker: formats are not asserted, and no defaults are filled in.
        self._check = fastjsonschema.compile(schema, use_default=False, use_formats=False, detailed_exceptions=False)
        self.words = jsonschema.Draft7Validator(schema)

    def is_valid(self, instance: Any) -> bool:
        try:
            self._check(instance)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    def problem(self, instance: Any) -> str | None:
        """None for a valid instance, else what is wrong with it (the search for words only if bad)."""
        return None if self.is_valid(instance) else _first_error(self.words, instance)


def _first_error(validator: jsonschema.protocols.Validator, instance: Any, prefix: str = "") -> str | None:
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    return None if error is None else _message(error, prefix)


@dataclass
class Operation:
    id: str
    method: str
    path: str
    secured: bool
    query: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> schema
    query_schema: RequestSchema | None = None
    body_required: bool = False
    bodies: dict[str, RequestSchema] = field(default_factory=dict)  # by media type

    @property
    def rules(self) -> list[str]:
        """The Flask rules: the spec's path, plus the single-slash form of a `//` path."""
        rule = re.sub(r"\{(\w+)\}", r"<\1>", self.path)
        single = re.sub(r"/{2,}", "/", rule)
        return [rule] if single == rule else [rule, single]

    def check_query(self, args: MultiDict[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name, schema in self.query.items():
            if name in args:
                values[name] = _coerce(args.get(name, ""), schema)
        problem = None if self.query_schema is None else self.query_schema.problem(values)
        if problem:
            raise ValidationError(problem)
        return values

    def check_body(self, media_type: str, body: Any) -> None:
        problem = self.bodies[media_type].problem(body)
        if problem:
            raise ValidationError(problem)


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    try:
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
    except ValueError:
        pass
    return value


class Contract:
    """An OpenAPI document read once: its operations by operationId, each with compiled validators; `bodies`
    adds request media types beyond the document's (see EMULATOR_BODIES)."""

    def __init__(
        self,
        path: Path,
        bodies: Mapping[str, Mapping[str, str]] | None = None,
        nullable: Mapping[str, tuple[str, ...]] | None = None,
    ) -> None:
        self.path = path
        # libyaml's loader when present: start-up reads the contracts ten times faster.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.document: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
        checked = _with_nulls(self.document, nullable or {})  # what requests are checked against
        self.operations: dict[str, Operation] = {}
        global_security = self.document.get("security") or []
        for spec_path, item in self.document.get("paths", {}).items():
            shared = item.get("parameters", [])
            for method in _METHODS:
                if method not in item:
                    continue
                op = item[method]
                security = op.get("security", global_security)
                operation = Operation(
                    op["operationId"],
                    method.upper(),
                    spec_path,
                    secured=bool(security) and all(bool(req) for req in security),
                )
                params = [_deref(p, self.document) for p in [*shared, *op.get("parameters", [])]]
                query = {p["name"]: p.get("schema", {}) for p in params if p["in"] == "query"}
                if query:
                    operation.query = query
                    operation.query_schema = RequestSchema(
                        {
                            "type": "object",
                            "properties": query,
                            "required": [p["name"] for p in params if p["in"] == "query" and p.get("required")],
                        }
                    )
                body = _deref(op.get("requestBody"), checked)
                if body:
                    operation.body_required = bool(body.get("required"))
                    for media, content in body.get("content", {}).items():
                        operation.bodies[media] = RequestSchema(content.get("schema", {}))
                self.operations[operation.id] = operation
        for op_id, extra in (bodies or {}).items():
            self._accept(op_id, extra)

    def _accept(self, op_id: str, extra: Mapping[str, str]) -> None:
        operation = self.operations.get(op_id)
        if operation is None:
            raise ValueError(f"{self.path.name}: no operation {op_id!r} to accept more request media types")
        for media, like in extra.items():
            if media in operation.bodies:
                # The contract now lists it itself: the emulator's extension is stale and must go.
                raise ValueError(f"{self.path.name}: {op_id} already lists {media}")
            if like not in operation.bodies:
                raise ValueError(f"{self.path.name}: {op_id} has no {like} body to validate {media} with")
            operation.bodies[media] = operation.bodies[like]


@functools.cache
def vendor_contract() -> Contract:
    """The vendor contract as the emulator serves it: the document's promise plus EMULATOR_BODIES and
    EMULATOR_NULLABLE."""
    return Contract(VENDOR_SPEC, EMULATOR_BODIES, EMULATOR_NULLABLE)


@functools.cache
def admin_contract() -> Contract:
    return Contract(ADMIN_SPEC)


# -- form bodies ------------------------------------------------------------------------------------
_TOKEN = re.compile(r"\[([^\]]*)\]|\.?([^.\[\]]+)")


def _split_key(key: str) -> list[str | int]:
    """`modelVarReq[0].mapParam[NAME]` or `modelVarReq[0][modelId]` -> ['modelVarReq', 0, 'mapParam', 'NAME']."""
    parts: list[str | int] = []
    for bracket, plain in _TOKEN.findall(key):
        token = bracket if bracket or not plain else plain
        parts.append(int(token) if token.isdigit() else token)
    return parts


def _assign(tree: dict[str, Any], parts: list[str | int], value: str) -> None:
    node: Any = tree
    for part in parts[:-1]:
        child = node.get(part) if isinstance(node, dict) else None
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _listify(node: Any) -> Any:
    # Spring-style indices become lists, ordered by index (gaps closed).
    if isinstance(node, dict):
        node = {k: _listify(v) for k, v in node.items()}
        if node and all(isinstance(k, int) for k in node):
            return [node[k] for k in sorted(node)]
    return node


def form_to_dict(
    form: MultiDict[str, str], schema: dict[str, Any], parse_json: Callable[[str], Any] = json.loads
) -> dict[str, Any]:
    """Read a form body per its schema: JSON-string fields, repeated keys and `a[0].b` keys all accepted."""
    props = schema.get("properties", {})
    flat: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for key in form:
        values = form.getlist(key)
        if key in props:
            kind = props[key].get("type")
            if kind in ("array", "object"):
                flat[key] = _decode_structured(key, values, kind, parse_json)
            else:
                flat[key] = values[0]
        elif ("[" in key or "." in key) and (parts := _split_key(key)) and isinstance(parts[0], str):
            _assign(nested, parts, values[0])
        else:
            flat[key] = values[0]  # `[`, `0.a` and other keys that name no field path stay as they are
    for key, value in nested.items():
        flat.setdefault(key, _listify(value))
    return flat


def _decode_structured(key: str, values: list[str], kind: str, parse_json: Callable[[str], Any]) -> Any:
    decoded: list[Any] = []
    for raw in values:
        text = raw.strip()
        if text[:1] in ("[", "{"):
            try:
                decoded.append(parse_json(text))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{key}: not valid JSON ({exc.msg} at position {exc.pos})") from None
            except ValidationError as exc:
                raise type(exc)(f"{key}: {exc.message}") from None
        else:
            decoded.append(raw)
    if kind == "array":
        if len(decoded) == 1 and isinstance(decoded[0], list):
            return decoded[0]
        return decoded
    return decoded[0]
