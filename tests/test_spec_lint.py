"""Static checks of the OpenAPI contracts in openapi/.

(a) both files are valid OpenAPI 3.0.3 (openapi-spec-validator);
(b) every example in dpa-platform.yaml validates against its schema, and request schemas stay
    plain JSON Schema (the emulator compiles them with the `jsonschema` library);
(c) Redocly lint of both files exits 0 (needs `npm ci`);
(d) bearer security on every /api/dpa/ operation, none on the OAuth operations;
(e) the document's paths, including the two double-slash ones, are present verbatim;
(f) Schemathesis loads the contract and builds its state machine with the declared links.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import schemathesis
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_openapi

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = ROOT / "openapi" / "dpa-platform.yaml"
ADMIN = ROOT / "openapi" / "admin.yaml"
SPECS = {"dpa-platform": PLATFORM, "admin": ADMIN}

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_STATUSES = ("400", "403", "404", "500", "503")

# operationId -> (method, path), verbatim from the vendor document (paths keep their `//`).
DOCUMENT_OPERATIONS = {
    "authorize": ("get", "/api/dp/auth/oauth/authorize"),
    "getToken": ("post", "/api/dp/auth/oauth/token"),
    "listPlans": ("get", "/api/dpa/process/processPlan/queryPlanByUserId"),
    "queryModelByPlanId": ("post", "/api/dpa/process/processPlan/queryModelByPlanId"),
    "saveTimingParam": ("post", "/api/dpa/process/processPlan/saveTimingParam"),
    "executePlan": ("post", "/api/dpa/process//processPlan/opExecutePlanByApi/{processPlanId}"),
    "queryPlanRunOutParam": ("get", "/api/dpa/process//processPlan/queryPlanRunOutParam"),
}
DOUBLE_SLASH_PATHS = (
    "/api/dpa/process//processPlan/opExecutePlanByApi/{processPlanId}",
    "/api/dpa/process//processPlan/queryPlanRunOutParam",
)
# OpenAPI-only schema keywords that plain JSON Schema would silently ignore.
OPENAPI_ONLY_KEYWORDS = {"nullable", "discriminator", "readOnly", "writeOnly", "xml", "externalDocs"}


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fd:
        return yaml.safe_load(fd)


@pytest.fixture(scope="module")
def platform() -> dict[str, Any]:
    return _load(PLATFORM)


@pytest.fixture(scope="module")
def admin() -> dict[str, Any]:
    return _load(ADMIN)


# --------------------------------------------------------------------------- helpers


def _pointer(spec: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used in the contracts, got {ref!r}"
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow a top-level $ref chain (responses, parameters, callbacks, examples)."""
    while isinstance(node, dict) and "$ref" in node:
        node = _pointer(spec, node["$ref"])
    return node


def _inline(spec: dict[str, Any], schema: Any, seen: tuple[str, ...] = ()) -> Any:
    """Return `schema` with every local $ref replaced by its target (the contracts have no cycles)."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            ref = schema["$ref"]
            assert ref not in seen, f"recursive schema reference {ref}"
            return _inline(spec, _pointer(spec, ref), seen + (ref,))
        return {key: _inline(spec, value, seen) for key, value in schema.items()}
    if isinstance(schema, list):
        return [_inline(spec, item, seen) for item in schema]
    return schema


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], list[dict[str, Any]]]]:
    """(method, path, operation, path-level parameters) of every path operation."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method, path, item[method], item.get("parameters", [])


def _callback_operations(spec: dict[str, Any], operation: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, callback in (operation.get("callbacks") or {}).items():
        for expression, item in _resolve(spec, callback).items():
            for method in HTTP_METHODS:
                if method in item:
                    yield f"callback {name} {method.upper()} {expression}", item[method]


def _named_examples(spec: dict[str, Any], holder: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    if "example" in holder:
        yield "example", holder["example"]
    for name, example in (holder.get("examples") or {}).items():
        example = _resolve(spec, example)
        assert "value" in example, f"named example {name!r} has no inline value"
        yield name, example["value"]


def _collect_examples(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], Any]]:
    """(id, kind, schema, value) for every example; kind is 'request' or 'response'."""
    found: list[tuple[str, str, dict[str, Any], Any]] = []

    def from_operation(label: str, operation: dict[str, Any], path_params: list[dict[str, Any]]) -> None:
        for param in [*path_params, *operation.get("parameters", [])]:
            param = _resolve(spec, param)
            for name, value in _named_examples(spec, param):
                found.append((f"{label} param {param['name']} [{name}]", "request", param["schema"], value))
        body = _resolve(spec, operation.get("requestBody"))
        for media, content in ((body or {}).get("content") or {}).items():
            for name, value in _named_examples(spec, content):
                found.append((f"{label} request {media} [{name}]", "request", content["schema"], value))
        for status, response in operation.get("responses", {}).items():
            response = _resolve(spec, response)
            for media, content in (response.get("content") or {}).items():
                for name, value in _named_examples(spec, content):
                    found.append((f"{label} {status} {media} [{name}]", "response", content["schema"], value))

    for method, path, operation, path_params in _operations(spec):
        label = f"{method.upper()} {path}"
        from_operation(label, operation, path_params)
        for cb_label, cb_operation in _callback_operations(spec, operation):
            from_operation(f"{label} {cb_label}", cb_operation, [])
    return found


def _validator_for(spec: dict[str, Any], kind: str, schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    inlined = _inline(spec, schema)
    if kind == "request":
        # Requests: plain JSON Schema, exactly as the emulator compiles them.
        jsonschema.Draft7Validator.check_schema(inlined)
        return jsonschema.Draft7Validator(inlined)
    # Responses: OpenAPI 3.0 dialect (nullable), a jsonschema validator class.
    return OAS30Validator(inlined)


def _schema_keywords(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key in ("properties", "patternProperties"):
                for sub in value.values():
                    yield from _schema_keywords(sub)
            else:
                yield key
                yield from _schema_keywords(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_keywords(item)


# --------------------------------------------------------------------------- (a) validity


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_is_valid_openapi_303(name: str) -> None:
    spec = _load(SPECS[name])
    assert spec["openapi"] == "3.0.3"
    validate_openapi(spec, base_uri=SPECS[name].as_uri())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_operation_ids_unique(name: str) -> None:
    spec = _load(SPECS[name])
    ids = [operation["operationId"] for _, _, operation, _ in _operations(spec)]
    assert len(ids) == len(set(ids)), ids


# --------------------------------------------------------------------------- (b) examples


def test_examples_are_valid(platform: dict[str, Any]) -> None:
    examples = _collect_examples(platform)
    # Guard against the walk silently finding nothing.
    assert len(examples) >= 25, [ex[0] for ex in examples]
    kinds = {kind for _, kind, _, _ in examples}
    assert kinds == {"request", "response"}
    errors = []
    for ident, kind, schema, value in examples:
        for error in _validator_for(platform, kind, schema).iter_errors(value):
            errors.append(f"{ident}: {error.message} at {list(error.absolute_path)}")
    assert not errors, "\n".join(errors)


def test_every_operation_has_a_document_success_example(platform: dict[str, Any]) -> None:
    labels = {ident for ident, kind, _, _ in _collect_examples(platform) if kind == "response"}
    for operation_id, (method, path) in DOCUMENT_OPERATIONS.items():
        prefix = f"{method.upper()} {path} 200 application/json ["
        assert any(label.startswith(prefix) for label in labels), f"{operation_id}: no 200 example"


def test_example_validation_can_fail(platform: dict[str, Any]) -> None:
    """The validators used above do reject wrong values (so the check is not vacuous)."""
    operation = platform["paths"][DOCUMENT_OPERATIONS["listPlans"][1]]["get"]
    content = operation["responses"]["200"]["content"]["application/json"]
    good = copy.deepcopy(content["examples"]["document"]["value"])
    validator = _validator_for(platform, "response", content["schema"])
    assert validator.is_valid(good)
    bad = copy.deepcopy(good)
    bad["data"][0]["status"] = "DONE"
    assert not validator.is_valid(bad)
    del good["data"][0]["createTime"]
    assert not validator.is_valid(good)

    body = platform["paths"][DOCUMENT_OPERATIONS["saveTimingParam"][1]]["post"]["requestBody"]
    form = body["content"]["application/x-www-form-urlencoded"]
    request_validator = _validator_for(platform, "request", form["schema"])
    sample = copy.deepcopy(form["examples"]["cycle"]["value"])
    assert request_validator.is_valid(sample)
    sample["intervals"] = "0"
    assert not request_validator.is_valid(sample)


def test_request_schemas_are_plain_json_schema(platform: dict[str, Any]) -> None:
    for method, path, operation, path_params in _operations(platform):
        schemas = [_resolve(platform, p)["schema"] for p in [*path_params, *operation.get("parameters", [])]]
        body = _resolve(platform, operation.get("requestBody")) or {}
        schemas += [content["schema"] for content in (body.get("content") or {}).values()]
        for schema in schemas:
            inlined = _inline(platform, schema)
            jsonschema.Draft4Validator.check_schema(inlined)
            jsonschema.Draft7Validator.check_schema(inlined)
            used = OPENAPI_ONLY_KEYWORDS & set(_schema_keywords(inlined))
            assert not used, f"{method.upper()} {path}: OpenAPI-only keywords in a request schema: {used}"


def test_http_status_is_not_judged_by_the_contract(platform: dict[str, Any]) -> None:
    """The document ties no HTTP status to a business code: any error envelope with HTTP 200, with its own
    status or with another (`default`); a success envelope only as code 200. (The emulator's own `mirror`
    policy is checked by its tests, not here.)"""
    errors = (400, 403, 404, 500, 503, 997, 998, 999)
    for operation_id, (method, path) in DOCUMENT_OPERATIONS.items():
        operation = platform["paths"][path][method]
        responses = operation["responses"]
        for status in (*ERROR_STATUSES, "default"):
            assert status in responses, f"{operation_id}: no {status} response"
            content = _resolve(platform, responses[status])["content"]["application/json"]
            validator = _validator_for(platform, "response", content["schema"])
            for code in errors:
                assert validator.is_valid({"code": code, "message": "任意", "data": None}), (operation_id, status, code)
                assert validator.is_valid({"code": code, "message": "x", "extra": 1}), (operation_id, status, code)
            for bad in (
                {"code": 200, "message": "", "data": {}},
                {"code": 405, "message": "x"},
                {"code": 400, "message": None},
                {"code": "400", "message": "x"},
            ):
                assert not validator.is_valid(bad), (operation_id, status, bad)
        ok = _validator_for(platform, "response", responses["200"]["content"]["application/json"]["schema"])
        for code in errors:
            assert ok.is_valid({"code": code, "message": "业务逻辑异常", "data": None}), (operation_id, code)
        for code in (201, 0, 405):
            assert not ok.is_valid({"code": code, "message": "x", "data": None}), (operation_id, code)


# --------------------------------------------------------------------------- (c) Redocly


def test_redocly_lint() -> None:
    if shutil.which("npx") is None:
        pytest.fail("npx not found: install Node.js (>= 20.19) and run `npm ci` in the repository root")
    if not (ROOT / "node_modules" / ".bin" / "redocly").exists():
        pytest.fail("Redocly CLI is not installed: run `npm ci` in the repository root")
    env = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true", NO_COLOR="1")
    result = subprocess.run(
        [
            "npx",
            "--no-install",
            "redocly",
            "lint",
            "--format=stylish",
            str(PLATFORM.relative_to(ROOT)),
            str(ADMIN.relative_to(ROOT)),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"redocly lint failed:\n{result.stdout}\n{result.stderr}"


# --------------------------------------------------------------------------- (d) security


def test_bearer_auth_scheme(platform: dict[str, Any]) -> None:
    scheme = platform["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    # Per-operation security only: a global requirement would be a trap for new operations.
    assert "security" not in platform


def test_security_per_operation(platform: dict[str, Any]) -> None:
    seen = set()
    for method, path, operation, _ in _operations(platform):
        label = f"{method.upper()} {path}"
        if path.startswith("/api/dpa/"):
            assert operation.get("security") == [{"bearerAuth": []}], label
        elif path.startswith("/api/dp/auth/oauth/"):
            assert operation.get("security") == [], label
        else:
            pytest.fail(f"unexpected path {label}")
        for cb_label, cb_operation in _callback_operations(platform, operation):
            assert cb_operation.get("security") == [], f"{label} {cb_label}"
        seen.add(operation["operationId"])
    assert seen == set(DOCUMENT_OPERATIONS)


def test_admin_security(admin: dict[str, Any]) -> None:
    scheme = admin["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "X-Admin-Token")
    assert admin["security"] == [{}, {"adminToken": []}]
    for method, path, operation, _ in _operations(admin):
        assert path.startswith("/__admin/"), path
        assert "security" not in operation, f"{method.upper()} {path} overrides the admin security"


# --------------------------------------------------------------------------- (e) paths


def test_document_paths_verbatim(platform: dict[str, Any]) -> None:
    text = PLATFORM.read_text(encoding="utf-8")
    for path in DOUBLE_SLASH_PATHS:
        assert path in platform["paths"], path
        assert f"  {path}:" in text, f"{path} is not written verbatim as a path key"
        assert path.replace("//", "/") not in platform["paths"], f"single-slash twin of {path}"
    found = {operation["operationId"]: (method, path) for method, path, operation, _ in _operations(platform)}
    assert found == DOCUMENT_OPERATIONS


def test_servers(platform: dict[str, Any]) -> None:
    urls = [server["url"] for server in platform["servers"]]
    assert urls == ["http://127.0.0.1:29041", "https://jkstack.dev.jingkunsystem.com:29041"]


# --------------------------------------------------------------------------- (f) Schemathesis


EXPECTED_LINKS = {
    # (source operationId, link name, target operationId)
    ("authorize", "getToken", "getToken"),
    ("listPlans", "queryModelByPlanId", "queryModelByPlanId"),
    ("listPlans", "executePlan", "executePlan"),
    ("executePlan", "queryPlanRunOutParam", "queryPlanRunOutParam"),
}


def _schemathesis_schema(path: Path) -> schemathesis.specs.openapi.schemas.OpenApiSchema:
    # An explicit default config: a schemathesis.toml found from the cwd must not change this check.
    return schemathesis.openapi.from_path(path, config=schemathesis.Config())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_schemathesis_loads(name: str) -> None:
    schema = _schemathesis_schema(SPECS[name])
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())  # raises on an operation Schemathesis cannot use
    assert len(operations) == len(list(_operations(_load(SPECS[name]))))


def test_schemathesis_state_machine(platform: dict[str, Any]) -> None:
    schema = _schemathesis_schema(PLATFORM)
    machine = schema.as_state_machine()  # raises InvalidStateMachine on a broken link
    label_to_id = {
        f"{method.upper()} {path}": operation["operationId"] for method, path, operation, _ in _operations(platform)
    }
    transitions = getattr(machine, "_transitions", None)
    assert transitions is not None, "schemathesis internals changed: update this test's link introspection"
    declared = set()
    for source, operation_transitions in transitions.operations.items():
        for link in operation_transitions.outgoing:
            if not link.is_inferred:
                declared.add((label_to_id[source], link.name, label_to_id[link.target.label]))
    assert declared == EXPECTED_LINKS


def test_links_reference_real_fields(platform: dict[str, Any]) -> None:
    """Every `$response.body#/data/...` pointer in a link exists in the source's success schema."""
    for _method, _path, operation, _ in _operations(platform):
        for response in operation["responses"].values():
            for name, link in (_resolve(platform, response).get("links") or {}).items():
                expressions = list((link.get("parameters") or {}).values())
                body = link.get("requestBody")
                expressions += list(body.values()) if isinstance(body, dict) else [body] if body else []
                success = _inline(platform, response["content"]["application/json"]["schema"]["oneOf"][0])
                for expression in expressions:
                    if not expression.startswith("$response.body#/"):
                        continue
                    node: Any = {"allOf": success["allOf"]}
                    for part in expression.split("#/", 1)[1].split("/"):
                        node = _schema_step(node, part)
                        assert node is not None, f"{operation['operationId']} link {name}: {expression}"


def _schema_step(schema: dict[str, Any], part: str) -> dict[str, Any] | None:
    """The (allOf-merged) subschema that a JSON Pointer segment leads to, or None."""
    candidates = [schema, *schema.get("allOf", [])]
    if part.isdigit():
        found = [c["items"] for c in candidates if "items" in c]
    else:
        found = [c["properties"][part] for c in candidates if part in (c.get("properties") or {})]
    if not found:
        return None
    return {"allOf": [sub for f in found for sub in [f, *f.get("allOf", [])]]}
