"""The benchmark's command line, and the ways of serving the emulator it compares (store and worker count)."""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

from mock_server.settings import Settings

PARTS = ("granian", "workers", "accesslog", "peers", "waitress", "virtual", "integrator", "coldstart")
DEFAULT_CONFIGS = "sqlite,sqlite-2w"


@dataclass(frozen=True)
class Config:
    """One way of serving the emulator: N granian workers, state in memory or in one shared SQLite file."""

    workers: int
    state: bool

    @property
    def key(self) -> str:
        return ("sqlite" if self.state else "memory") + (f"-{self.workers}w" if self.workers != 1 else "")

    @property
    def label(self) -> str:
        """The HTTP table's Server column; (a) keeps the documented default's plain "granian"."""
        return self.baseline + (", sqlite" if self.state else "")

    @property
    def baseline(self) -> str:
        """The Server label of the ceiling row it is compared with: the same server and worker count."""
        return "granian" + (f" ×{self.workers}" if self.workers != 1 else "")


DEFAULT_CONFIG = Config(1, False)  # (a): what `dpa-mock serve` does without options


def parse_configs(text: str) -> list[Config]:
    out = []
    for item in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"sqlite(?:-(\d+)w)?", item)
        if not m or (m.group(1) and int(m.group(1)) < 1):
            raise ValueError(
                f"{item!r} (expected sqlite or sqlite-Nw, e.g. sqlite-2w; the in-memory default "
                "is the granian part, and more than one worker needs the shared SQLite state)"
            )
        config = Config(int(m.group(1) or 1), True)
        if config not in out:
            out.append(config)
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk row (default 10; 2 with --quick)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--server-threads",
        type=int,
        default=Settings().threads,
        help=f"server threads, emulator and ceiling alike (default {Settings().threads})",
    )
    parser.add_argument(
        "--executions",
        type=int,
        default=None,
        help="executions before the memory reading (default 100000; 10000 with --quick)",
    )
    parser.add_argument(
        "--callback-runs", type=int, default=None, help="runs with a callbackUrl (default 500; 100 with --quick)"
    )
    parser.add_argument(
        "--scenes", type=int, default=None, help="one-minute cycle scenes (default 1000; 100 with --quick)"
    )
    parser.add_argument(
        "--day-seconds", type=float, default=None, help="virtual seconds to advance (default 86400; 600 with --quick)"
    )
    parser.add_argument("--quick", action="store_true", help="short rows and small counts: about a minute")
    parser.add_argument(
        "--only", default=",".join(PARTS), help=f"comma-separated parts to run (default all: {','.join(PARTS)})"
    )
    parser.add_argument(
        "--configs",
        default=DEFAULT_CONFIGS,
        help="shared-state configurations for the workers part: sqlite (1 worker, --state) and "
        f"sqlite-Nw (--workers N --state), comma-separated (default {DEFAULT_CONFIGS}); "
        "the in-memory default is always the granian part",
    )
    parser.add_argument(
        "--drain-cap",
        type=float,
        default=120.0,
        help="seconds to wait after the execute row for every run to finish (default 120)",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        help="before each wrk row, wait up to this many seconds for other processes to use under "
        "--quiet-cores (default 20; 0: never wait)",
    )
    parser.add_argument(
        "--quiet-budget",
        type=float,
        default=60.0,
        help="at most this many seconds of such waiting in the whole run (default 60)",
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.25,
        help="CPU cores other processes may use for a row to start at once (default 0.25)",
    )
    parser.add_argument(
        "--peer-warmup",
        type=float,
        default=None,
        help="seconds of wrk against each peer before its measured row (default 20; 5 with --quick)",
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown (with machine info) here")
    args = parser.parse_args(argv)
    args.only = {p.strip() for p in args.only.split(",") if p.strip()}
    if args.only - set(PARTS):
        parser.error(f"--only: unknown part(s) {sorted(args.only - set(PARTS))}; choose from {','.join(PARTS)}")
    try:
        args.configs = parse_configs(args.configs)
    except ValueError as exc:
        parser.error(f"--configs: {exc}")
    quick = args.quick
    defaults = {
        "duration": 2.0 if quick else 10.0,
        "peer_warmup": 5.0 if quick else 20.0,
        "executions": 10_000 if quick else 100_000,
        "callback_runs": 100 if quick else 500,
        "scenes": 100 if quick else 1000,
        "day_seconds": 600.0 if quick else 86400.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.memory_cap = 20.0 if quick else 90.0  # wall seconds the memory-check wrk run may take at most
    return args
