"""The one exception the client raises: a business code, its message, the HTTP status and the payload."""

from __future__ import annotations

from typing import Any


class DpaError(Exception):
    """An error envelope (`code` != 200), or a response that is not the documented envelope (`code` None)."""

    def __init__(self, code: int | None, message: str, http_status: int | None = None, data: Any = None) -> None:
        super().__init__(code, message, http_status)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.data = data

    def __str__(self) -> str:
        where = f" (HTTP {self.http_status})" if self.http_status is not None else ""
        label = "not an envelope" if self.code is None else f"code {self.code}"
        return f"{label}{where}: {self.message}"

    def __repr__(self) -> str:
        return f"DpaError(code={self.code!r}, message={self.message!r}, http_status={self.http_status!r})"
