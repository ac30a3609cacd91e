"""Plain dataclasses for the document's payloads, each built from JSON with its field types checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dpa_client.errors import DpaError


def _get(obj: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict):
        raise DpaError(None, f"{where}: expected an object, got {type(obj).__name__}")
    if name not in obj:
        raise DpaError(None, f"{where}: field {name!r} is missing")
    value = obj[name]
    # bool is an int subclass in Python; the document never means a boolean by "int".
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise DpaError(None, f"{where}.{name}: expected {_names(kind)}, got {type(value).__name__}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _as_tuple(kind))


def _list(obj: Any, where: str) -> list[Any]:
    if not isinstance(obj, list):
        raise DpaError(None, f"{where}: expected a list, got {type(obj).__name__}")
    return obj


@dataclass(frozen=True)
class Token:
    """An access token; the token itself is kept out of repr so it never lands in a log."""

    token_type: str
    access_token: str = field(repr=False)

    @classmethod
    def from_json(cls, data: Any) -> Token:
        return cls(_get(data, "token_type", str, "token"), _get(data, "access_token", str, "token"))


@dataclass(frozen=True)
class Plan:
    process_plan_id: str
    title: str
    status: str
    step_nums: int
    version: int
    create_time: int  # epoch milliseconds
    create_user: str
    update_time: int  # epoch milliseconds
    update_user: str

    @classmethod
    def from_json(cls, data: Any, where: str = "plan") -> Plan:
        return cls(
            _get(data, "processPlanId", str, where),
            _get(data, "title", str, where),
            _get(data, "status", str, where),
            _get(data, "stepNums", int, where),
            _get(data, "version", int, where),
            _get(data, "createTime", int, where),
            _get(data, "createUser", str, where),
            _get(data, "updateTime", int, where),
            _get(data, "updateUser", str, where),
        )


@dataclass(frozen=True)
class ModelParam:
    name: str
    type: str


@dataclass(frozen=True)
class ProcessModel:
    model_name: str
    process_model_id: str
    params: tuple[ModelParam, ...]

    @classmethod
    def from_json(cls, data: Any, where: str = "model") -> ProcessModel:
        params = _list(_get(data, "mapParam", list, where), f"{where}.mapParam")
        return cls(
            _get(data, "modelName", str, where),
            _get(data, "processModelId", str, where),
            tuple(
                ModelParam(
                    _get(p, "name", str, f"{where}.mapParam[{i}]"), _get(p, "type", str, f"{where}.mapParam[{i}]")
                )
                for i, p in enumerate(params)
            ),
        )


@dataclass(frozen=True)
class Execution:
    process_plan_id: str
    plan_instance_id: str

    @classmethod
    def from_json(cls, data: Any, where: str = "execution") -> Execution:
        return cls(_get(data, "processPlanId", str, where), _get(data, "planInstanceId", str, where))


@dataclass(frozen=True)
class OutputParam:
    result: str
    node_name: str


@dataclass(frozen=True)
class ModelOutput:
    model_name: str
    process_model_id: str
    params: tuple[OutputParam, ...]

    @classmethod
    def from_json(cls, data: Any, where: str = "output") -> ModelOutput:
        params = _list(_get(data, "mapParam", list, where), f"{where}.mapParam")
        return cls(
            _get(data, "modelName", str, where),
            _get(data, "processModelId", str, where),
            tuple(
                OutputParam(
                    _get(p, "result", str, f"{where}.mapParam[{i}]"), _get(p, "nodeName", str, f"{where}.mapParam[{i}]")
                )
                for i, p in enumerate(params)
            ),
        )


@dataclass(frozen=True)
class Scene:
    instance_id: str
    model_id: str
    status: str

    @classmethod
    def from_json(cls, data: Any, where: str = "scene") -> Scene:
        return cls(
            _get(data, "instanceId", str, where), _get(data, "modelId", str, where), _get(data, "status", str, where)
        )


@dataclass(frozen=True)
class ModelVarReq:
    """Execution-time inputs of one workflow; `model_id` None applies them to every workflow of the plan."""

    map_param: dict[str, Any]
    model_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mapParam": dict(self.map_param)}
        if self.model_id is not None:
            out["modelId"] = self.model_id
        return out
