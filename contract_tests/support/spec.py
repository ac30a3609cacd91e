"""Where the contract lives: inside the installed `mock_server` package (`_data/openapi`), checkout or wheel alike."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path

# The checkout links mock_server/_data/openapi to openapi/; a wheel ships the files there. A zipped install
# would need extracting: as_file gives a real path either way (kept for the process's life).
_RESOURCE = files("mock_server").joinpath("_data", "openapi", "dpa-platform.yaml")
SPEC: Path = Path(str(_RESOURCE)) if Path(str(_RESOURCE)).is_file() else as_file(_RESOURCE).__enter__()
