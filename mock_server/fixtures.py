"""Load and check the YAML fixtures; a mistake stops start-up naming the file, the key and the reason."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import yaml

from mock_server.domain.catalog import NODE_OUTCOMES, App, Catalog, Node, ParamDef, Plan, User, Workflow

# fixtures/ at the repository root, reached through the package so that installed wheels carry it too.
DEFAULT_FIXTURES = Path(__file__).parent / "_data" / "fixtures"


class FixtureError(Exception):
    """A fixture file that cannot be used; the message names file, key and reason."""

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key or '<top>'}: {reason}")
        self.file, self.key, self.reason = str(file), key, reason


# A node runs for at most a year: `.inf` would leave its run RUNNING forever, and a run engine computes with
# every due time. Epoch milliseconds end with year 9999; versions and times fit the vendor's Java longs.
MAX_NODE_DURATION = 365 * 86_400
MAX_EPOCH_MILLIS = 253_402_300_799_999
MAX_LONG = 2**63 - 1

_str = {"type": "string"}
_id = {"type": "string", "minLength": 1}
_APP = {
    "type": "object",
    "required": ["name", "objectId", "clientId", "clientSecret", "validUntil", "users"],
    "additionalProperties": False,
    "properties": {
        "name": _id,
        "objectId": {"type": ["string", "integer"]},
        "clientId": _id,
        "clientSecret": _id,
        "validUntil": _id,
        "scopes": {"type": "array", "items": {"enum": ["all", "default"]}, "minItems": 1},
        "note": _str,
        "users": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["id"],
                "additionalProperties": False,
                "properties": {"id": {"type": ["string", "integer"]}, "name": _str},
            },
        },
    },
}
_NODE = {
    "type": "object",
    "required": ["nodeName", "nodeType", "duration"],
    "additionalProperties": False,
    "properties": {
        "nodeName": _id,
        "nodeType": _id,
        "duration": {"type": "number", "minimum": 0, "maximum": MAX_NODE_DURATION},
        "outcome": {"enum": list(NODE_OUTCOMES)},
        "probability": {"type": "number", "minimum": 0, "maximum": 1},
        "result": {"type": ["string", "number", "boolean"]},
    },
}
_PARAM = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": _id,
        "type": _str,
        "required": {"type": "boolean"},
        "default": {"type": ["string", "number", "boolean"]},
    },
}
_PLAN = {
    "type": "object",
    "required": ["processPlanId", "title", "workflows"],
    "additionalProperties": False,
    "properties": {
        "processPlanId": _id,
        "title": _id,
        "status": {"enum": ["DEFAULT", "RUNNING", "PENDING", "SUCCESS", "FAIL"]},
        "version": {"type": "integer", "minimum": 0, "maximum": MAX_LONG},
        "createTime": {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MILLIS},
        "createUser": _str,
        "updateTime": {"type": "integer", "minimum": 0, "maximum": MAX_EPOCH_MILLIS},
        "updateUser": _str,
        "note": _str,
        "visibleTo": {"type": "array", "items": {"type": ["string", "integer"]}},
        "workflows": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["processModelId", "modelName", "nodes"],
                "additionalProperties": False,
                "properties": {
                    "processModelId": _id,
                    "modelName": _id,
                    "mapParam": {"type": "array", "items": _PARAM},
                    "nodes": {"type": "array", "minItems": 1, "items": _NODE},
                },
            },
        },
    },
}
_FILE = {
    "type": "object",
    "additionalProperties": False,
    # Keys starting with "_" hold YAML anchors (shared user lists and the like) and are ignored.
    "patternProperties": {"^_": {}},
    "properties": {"apps": {"type": "array", "items": _APP}, "plans": {"type": "array", "items": _PLAN}},
}


def _key(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _reason(error: jsonschema.ValidationError) -> str:
    # error.schema is the (sub)schema holding the keyword; the stubs also allow a bool schema or Unset.
    if (
        error.validator == "additionalProperties"
        and isinstance(error.instance, dict)
        and isinstance(error.schema, Mapping)
    ):
        allowed = set(error.schema.get("properties", {}))
        unknown = sorted(k for k in error.instance if k not in allowed and not str(k).startswith("_"))
        if unknown:
            return f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
    message: str = error.message  # typed even where jsonschema's stubs are missing (see mypy.ini)
    return message


def _not_finite(doc: Any) -> tuple[str, float] | None:
    """The key path and value of the first `.nan` or `.inf` in a document, if any: JSON Schema's bounds let NaN
    through (it compares false with everything), and one NaN duration froze the whole run engine."""
    stack: list[tuple[list[str | int], Any]] = [([], doc)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return _key(path), node
        if isinstance(node, dict):
            items = [(k, v) for k, v in node.items() if path or not str(k).startswith("_")]  # anchors: ignored
            stack.extend(([*path, str(k)], v) for k, v in reversed(items))
        elif isinstance(node, list):
            stack.extend(([*path, i], v) for i, v in reversed(list(enumerate(node))))
    return None


def _parse_time(value: str, tz: ZoneInfo, file: Path, key: str) -> float:
    try:
        stamp = dt.datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise FixtureError(file, key, f"{value!r} is not a 'YYYY-MM-DD HH:MM:SS' time") from None
    return stamp.replace(tzinfo=tz).timestamp()


def load_catalog(directory: Path | str | None = None, timezone: str = "Asia/Shanghai") -> Catalog:
    directory = Path(directory) if directory else DEFAULT_FIXTURES
    if not directory.is_dir():
        raise FixtureError(directory, "", "fixtures directory does not exist")
    files = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not files:
        raise FixtureError(directory, "", "no *.yaml fixture files found")
    tz = ZoneInfo(timezone)
    catalog = Catalog()
    models: dict[str, tuple[Path, str]] = {}
    audiences: list[
        tuple[Path, str, str]
    ] = []  # (file, key, user) of every visibleTo entry, checked once all apps are read
    for file in files:
        try:
            doc = (
                yaml.load(file.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
            )
        except OSError as exc:
            raise FixtureError(file, "", f"cannot read: {exc.strerror or exc}") from None
        except (yaml.YAMLError, ValueError) as exc:  # ValueError: not UTF-8, or an int past Python's 4,300 digits
            raise FixtureError(file, "", f"not valid YAML: {exc}") from None
        bad = _not_finite(doc)
        if bad is not None:
            raise FixtureError(file, bad[0], f"{bad[1]} is not a finite number (.nan and .inf are refused)")
        error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(_FILE).iter_errors(doc))
        if error is not None:
            raise FixtureError(file, _key(error.absolute_path), _reason(error))
        for i, raw in enumerate(doc.get("apps", [])):
            key = f"apps[{i}]"
            if raw["clientId"] in catalog.apps:
                raise FixtureError(file, f"{key}.clientId", f"duplicate clientId {raw['clientId']!r}")
            catalog.apps[raw["clientId"]] = App(
                name=raw["name"],
                object_id=str(raw["objectId"]),
                client_id=raw["clientId"],
                client_secret=raw["clientSecret"],
                valid_until=_parse_time(raw["validUntil"], tz, file, f"{key}.validUntil"),
                scopes=tuple(raw.get("scopes", ["all", "default"])),
                users=tuple(User(str(u["id"]), u.get("name", "")) for u in raw["users"]),
            )
        for i, raw in enumerate(doc.get("plans", [])):
            key = f"plans[{i}]"
            if raw["processPlanId"] in catalog.plans:
                raise FixtureError(file, f"{key}.processPlanId", f"duplicate processPlanId {raw['processPlanId']!r}")
            workflows = []
            for j, w in enumerate(raw["workflows"]):
                wkey = f"{key}.workflows[{j}]"
                if w["processModelId"] in models:
                    f0, k0 = models[w["processModelId"]]
                    raise FixtureError(
                        file,
                        f"{wkey}.processModelId",
                        f"duplicate processModelId {w['processModelId']!r} (first in {f0.name}: {k0})",
                    )
                models[w["processModelId"]] = (file, wkey)
                workflows.append(_workflow(w, file, wkey))
            visible = raw.get("visibleTo")
            audiences += [(file, f"{key}.visibleTo[{j}]", str(u)) for j, u in enumerate(visible or [])]
            catalog.plans[raw["processPlanId"]] = Plan(
                id=raw["processPlanId"],
                title=raw["title"],
                status=raw.get("status", "DEFAULT"),
                version=raw.get("version", 0),
                create_time=raw.get("createTime", 1626944836628),
                create_user=raw.get("createUser", ""),
                update_time=raw.get("updateTime", raw.get("createTime", 1626944836628)),
                update_user=raw.get("updateUser", ""),
                workflows=tuple(workflows),
                visible_to=None if visible is None else tuple(str(v) for v in visible),
            )
    if not catalog.apps:
        what = f"{len(catalog.plans)} plans but " if catalog.plans else ""
        raise FixtureError(
            directory,
            "apps",
            f"no app defined in any fixture file ({what}no apps file: a "
            f"recording holds plans only; copy the bundled {DEFAULT_FIXTURES / 'apps.yaml'}"
            f" into {directory}, or write your own)",
        )
    users = {user.id for app in catalog.apps.values() for user in app.users}
    for file, key, user in audiences:
        if user not in users:
            raise FixtureError(
                file,
                key,
                f"user {user!r} is not a user of any app (known: {', '.join(sorted(users))}); "
                "add it to an app's users, or the plan is visible to nobody with scope default",
            )
    return catalog


def _workflow(raw: dict[str, Any], file: Path, key: str) -> Workflow:
    params = []
    seen: set[str] = set()
    for k, p in enumerate(raw.get("mapParam", [])):
        if p["name"] in seen:
            raise FixtureError(file, f"{key}.mapParam[{k}].name", f"duplicate parameter {p['name']!r}")
        seen.add(p["name"])
        default = p.get("default")
        params.append(
            ParamDef(
                p["name"], p.get("type", "running"), p.get("required", False), None if default is None else str(default)
            )
        )
    nodes = []
    for k, n in enumerate(raw["nodes"]):
        outcome = n.get("outcome", "succeed")
        if outcome == "random" and "probability" not in n:
            raise FixtureError(file, f"{key}.nodes[{k}].probability", "outcome 'random' needs a probability")
        nodes.append(
            Node(
                n["nodeName"],
                n["nodeType"],
                float(n["duration"]),
                outcome,
                float(n.get("probability", 1.0)),
                str(n.get("result", "")),
            )
        )
    return Workflow(raw["processModelId"], raw["modelName"], tuple(params), tuple(nodes))
