"""The Flask route table is exactly the two OpenAPI documents' operations, plus single-slash aliases of `//` paths."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from flask import Flask

ROOT = Path(__file__).resolve().parents[1]
SPECS = [ROOT / "openapi" / "dpa-platform.yaml", ROOT / "openapi" / "admin.yaml"]
METHODS = ("get", "put", "post", "delete", "patch")
Route = tuple[str, str, str]  # (Flask rule, METHOD, operationId)


def spec_routes() -> set[Route]:
    routes = set()
    for spec in SPECS:
        document = yaml.safe_load(spec.read_text(encoding="utf-8"))
        for path, item in document["paths"].items():
            for method in METHODS:
                if method in item:
                    routes.add((re.sub(r"\{(\w+)\}", r"<\1>", path), method.upper(), item[method]["operationId"]))
    return routes


def app_routes(app: Flask) -> set[Route]:
    return {
        (rule.rule, method, rule.endpoint.rpartition(".")[2])
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


def alias(rule: str) -> str:
    return re.sub(r"/{2,}", "/", rule)


def test_route_table_equals_the_specs(app: Flask) -> None:
    spec = spec_routes()
    doubles = {r for r in spec if "//" in r[0]}
    aliases = {(alias(rule), method, op) for rule, method, op in doubles}
    served = {r for r in app_routes(app) if r not in aliases and not r[0].startswith("/__admin/ui")}
    assert served == spec, {"not in spec": served - spec, "not served": spec - served}


def test_every_double_slash_path_has_its_single_slash_alias(app: Flask) -> None:
    spec = spec_routes()
    doubles = {r for r in spec if "//" in r[0]}
    assert {op for _, _, op in doubles} == {"executePlan", "queryPlanRunOutParam"}
    served = app_routes(app)
    for rule, method, op in doubles:
        assert (rule, method, op) in served
        assert (alias(rule), method, op) in served, (alias(rule), method)
    # No other alias sneaked in: every single-slash twin belongs to a `//` spec path.
    assert not {r for r in served if r not in spec and not r[0].startswith("/__admin/ui")} - {
        (alias(rule), m, op) for rule, m, op in doubles
    }


def test_slash_merging_is_off(app: Flask) -> None:
    # With merge_slashes on, Werkzeug would answer the `//` paths with a 308 to the single-slash form.
    assert app.url_map.merge_slashes is False
    assert all(rule.merge_slashes is False for rule in app.url_map.iter_rules() if "//" in rule.rule)
