"""What the fixtures describe: apps and their users, plans, workflows (models), their inputs and nodes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NODE_OUTCOMES = ("succeed", "fail", "pend", "random")
# Only these node types report output parameters (interface 6: "api,shell 节点").
OUTPUT_NODE_TYPES = frozenset({"api", "shell"})


@dataclass(frozen=True)
class User:
    id: str
    name: str = ""


@dataclass(frozen=True)
class App:
    name: str
    object_id: str
    client_id: str
    client_secret: str
    valid_until: float  # epoch seconds
    scopes: tuple[str, ...]
    users: tuple[User, ...]

    def user(self, user_id: str | None) -> User | None:
        if user_id is None or user_id == "":
            return self.users[0] if self.users else None
        return next((u for u in self.users if u.id == user_id), None)


@dataclass(frozen=True)
class ParamDef:
    name: str
    type: str = "running"
    required: bool = False
    default: str | None = None


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    duration: float
    outcome: str = "succeed"
    probability: float = 1.0
    result: str = ""

    @property
    def reports_output(self) -> bool:
        return self.type in OUTPUT_NODE_TYPES


@dataclass(frozen=True)
class Workflow:
    model_id: str
    name: str
    params: tuple[ParamDef, ...]
    nodes: tuple[Node, ...]

    def param(self, name: str) -> ParamDef | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class Plan:
    id: str
    title: str
    status: str
    version: int
    create_time: int  # epoch ms
    create_user: str
    update_time: int
    update_user: str
    workflows: tuple[Workflow, ...]
    visible_to: tuple[str, ...] | None = None  # None: every user

    def visible_for(self, user_id: str, scope: str) -> bool:
        # scope=all sees the whole catalogue; scope=default only the plans shared with the user.
        return scope == "all" or self.visible_to is None or user_id in self.visible_to

    def workflow(self, model_id: str) -> Workflow | None:
        return next((w for w in self.workflows if w.model_id == model_id), None)

    def to_dict(self, status: str) -> dict[str, Any]:
        """Interface 2's item for this plan, with the status the platform says it has now."""
        return {
            "processPlanId": self.id,
            "title": self.title,
            "status": status,
            "stepNums": len(self.workflows),
            "version": self.version,
            "createTime": self.create_time,
            "createUser": self.create_user,
            "updateTime": self.update_time,
            "updateUser": self.update_user,
        }


@dataclass
class Catalog:
    apps: dict[str, App] = field(default_factory=dict)  # by client_id
    plans: dict[str, Plan] = field(default_factory=dict)  # by processPlanId, in fixture order
