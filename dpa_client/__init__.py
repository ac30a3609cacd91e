"""A small typed client for the DPA process-plan (预案) platform API: OAuth plus interfaces 2-6."""

from dpa_client.client import PATHS, DpaClient
from dpa_client.errors import DpaError
from dpa_client.models import (
    Execution,
    ModelOutput,
    ModelParam,
    ModelVarReq,
    OutputParam,
    Plan,
    ProcessModel,
    Scene,
    Token,
)

__all__ = [
    "PATHS",
    "DpaClient",
    "DpaError",
    "Execution",
    "ModelOutput",
    "ModelParam",
    "ModelVarReq",
    "OutputParam",
    "Plan",
    "ProcessModel",
    "Scene",
    "Token",
]
