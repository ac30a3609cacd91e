"""Where the contract lives: inside the installed `mock_server` package (`_data/openapi`), checkout or wheel alike."""

from __future__ import annotations

import functools
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import yaml

# The checkout links mock_server/_data/openapi to openapi/; a wheel ships the files there. A zipped install
# would need extracting: as_file gives a real path either way (kept for the process's life).
_RESOURCE = files("mock_server").joinpath("_data", "openapi", "dpa-platform.yaml")
SPEC: Path = Path(str(_RESOURCE)) if Path(str(_RESOURCE)).is_file() else as_file(_RESOURCE).__enter__()


@functools.cache
def document() -> dict[str, Any]:
    """The contract parsed once per process (libyaml's loader when present: ten times faster than pure Python;
    the kit used to parse it once per request-body validator, about 0.4 s of every kit run's start-up)."""
    parsed: dict[str, Any] = yaml.load(
        SPEC.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    return parsed
