"""The benchmark's ceilings: a bare Flask app (and a raw WSGI callable) answering a small JSON, on granian's WSGI
interface with `dpa-mock serve`'s worker and thread counts (the emulator runs on RSGI through its gate)."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify

app = Flask(__name__)


@app.get("/json")
def hello() -> Response:
    return jsonify(code=200, message="success", data={"hello": "world"})


_RAW_BODY = b'{"code":200,"data":{"hello":"world"},"message":"success"}\n'  # jsonify's bytes


def raw_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """No framework at all: what Python on this server can do at most (the emulator's fast door skips Flask too)."""
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(_RAW_BODY)))])
    return [_RAW_BODY]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", choices=("granian", "waitress"), default="granian")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=29042)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="granian worker processes (default 1)")
    parser.add_argument("--raw", action="store_true", help="serve the raw WSGI callable instead of Flask")
    args = parser.parse_args(argv)
    # Same server arguments as mock_server/cli.py, so the only difference measured is the application.
    if args.server == "granian":
        from granian import Granian

        here = os.path.dirname(os.path.abspath(__file__))
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH", "")]))
        sys.path.insert(0, here)
        Granian(
            "ceiling_app:raw_app" if args.raw else "ceiling_app:app",
            address=args.host,
            port=args.port,
            interface="wsgi",
            workers=args.workers,
            blocking_threads=args.threads,
            log_enabled=True,
            log_access=False,
        ).serve()
    else:
        if args.workers != 1:
            parser.error("--workers: waitress serves from one process")
        import waitress

        def _stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        with contextlib.suppress(KeyboardInterrupt):  # SIGTERM, raised by _stop: a clean exit
            # At least 8 threads, as `dpa-mock serve --server waitress` (mock_server/cli.py) gives waitress.
            waitress.serve(
                raw_app if args.raw else app,
                host=args.host,
                port=args.port,
                threads=max(args.threads, 8),
                ident="dpa-mock",
                clear_untrusted_proxy_headers=True,
                channel_timeout=30,
            )


if __name__ == "__main__":
    main()
