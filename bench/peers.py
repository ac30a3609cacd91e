"""The peer mock servers (WireMock standalone, Stoplight Prism): install from npm, start, and measure with wrk."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling modules, when run as bench/peers.py

from servers import Server, free_port
from wrkdrive import WrkResult, run_wrk, static_script

PINS = {"wiremock": "3.13.2", "@stoplight/prism-cli": "5.16.0"}
# Outside the repo so a 90 MB node_modules never lands in git; DPA_MOCK_PEERS_CACHE moves it.
DEFAULT_CACHE = Path(os.environ.get("DPA_MOCK_PEERS_CACHE") or Path.home() / ".cache" / "dpa-mock-bench" / "peers")
LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
BEARER = {"Authorization": "Bearer x"}
START_TIMEOUT = 60.0  # a cold JVM on 2 busy cores can take several seconds before Jetty listens


def _plan(plan_id: str, title: str) -> dict[str, object]:
    return {
        "processPlanId": plan_id,
        "title": title,
        "status": "SUCCESS",
        "stepNums": 3,
        "version": 1,
        "createTime": "2026-01-01 00:00:00",
        "createUser": "u",
        "updateTime": "2026-01-01 00:00:00",
        "updateUser": "u",
    }


# The emulator's list-plans envelope with two plans; both peers serve exactly these bytes (compact JSON).
BODY = {
    "code": 200,
    "message": "success",
    "data": [_plan("acf42dd3", "测试预案"), _plan("b7e1c0a2", "多工作流巡检预案")],
}
BODY_TEXT = json.dumps(BODY, ensure_ascii=False, separators=(",", ":"))
CONTENT_TYPE = "application/json; charset=utf-8"


def _installed(cache_dir: Path, package: str) -> str | None:
    try:
        return json.loads((cache_dir / "node_modules" / package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def wiremock_jar(cache_dir: Path) -> Path | None:
    # The npm package bundles the standalone jar under build/ (its "runnable-jar-regexp": "build/.*.jar").
    return next(
        iter(sorted((cache_dir / "node_modules" / "wiremock" / "build").glob("wiremock-standalone-*.jar"))), None
    )


def install(cache_dir: Path = DEFAULT_CACHE) -> str | None:
    """Install the pinned peers into cache_dir unless already there; None, or why the peers can't be measured."""
    for tool in ("java", "node", "npm"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH"
    if all(_installed(cache_dir, p) == v for p, v in PINS.items()) and wiremock_jar(cache_dir):
        return None
    cache_dir.mkdir(parents=True, exist_ok=True)
    # --ignore-scripts: neither package needs one (the jar is bundled); it keeps @scarf/scarf's telemetry
    # postinstall from running. cwd=cache_dir so the repo's own package.json is never consulted.
    cmd = [
        "npm",
        "install",
        "--prefix",
        str(cache_dir),
        "--no-save",
        "--no-audit",
        "--no-fund",
        "--ignore-scripts",
        *(f"{p}@{v}" for p, v in PINS.items()),
    ]
    try:
        proc = subprocess.run(cmd, cwd=cache_dir, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return "npm install timed out after 600 s"
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        return f"npm install failed (exit {proc.returncode}): {last[:200]}"
    wrong = [f"{p}={_installed(cache_dir, p)}" for p, v in PINS.items() if _installed(cache_dir, p) != v]
    if wrong:
        return f"npm installed unexpected versions: {', '.join(wrong)}"
    return None if wiremock_jar(cache_dir) else "the wiremock npm package holds no standalone jar"


def wiremock(
    log_dir: Path, cache_dir: Path = DEFAULT_CACHE, *, journal: bool = True, container_threads: int | None = None
) -> Server:
    name = "wiremock" + ("" if journal else "-nojournal")
    root = log_dir / f"{name}-root"  # --root-dir: WireMock reads mappings/ and creates __files/ here
    (root / "mappings").mkdir(parents=True, exist_ok=True)
    mapping = {
        "request": {"method": "GET", "urlPath": LIST, "headers": {"Authorization": {"matches": "Bearer .+"}}},
        "response": {"status": 200, "headers": {"Content-Type": CONTENT_TYPE}, "body": BODY_TEXT},
    }
    (root / "mappings" / "list-plans.json").write_text(json.dumps(mapping, ensure_ascii=False), encoding="utf-8")
    jar = wiremock_jar(cache_dir)
    if jar is None:
        raise RuntimeError(f"no WireMock jar under {cache_dir}; run install() first")
    # Jetty's pool is WireMock's --container-threads (default 25). On 2 cores 8 served about 3x the req/s
    # of 25 (interleaved, JIT-warm runs: 20-31k vs 5-9k); 7 is Jetty's minimum there (acceptor, selectors,
    # reserved), so scale with the cores to stay above it elsewhere. JVM flags: defaults (G1);
    # -XX:+UseParallelGC measured within noise.
    threads, port = container_threads or max(8, 4 * (os.cpu_count() or 2)), free_port()
    # --disable-request-logging: otherwise every request and response is formatted into a log string
    # even when not --verbose (the notifier then drops it); WireMock's help suggests it for performance tests.
    cmd = [
        "java",
        "-jar",
        str(jar),
        "--port",
        str(port),
        "--bind-address",
        "127.0.0.1",
        "--root-dir",
        str(root),
        "--disable-banner",
        "--disable-request-logging",
        "--container-threads",
        str(threads),
        *([] if journal else ["--no-request-journal"]),
    ]
    return Server(name, cmd, port, "/__admin/health", log_dir / f"{name}.log")


def prism(log_dir: Path, cache_dir: Path = DEFAULT_CACHE, *, logging: bool = True) -> Server:
    name = "prism" + ("" if logging else "-silent")
    ok = {"description": "ok"}
    doc = {
        "openapi": "3.0.3",
        "info": {"title": "dpa-mock peer benchmark", "version": "1"},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": {
            LIST: {
                "get": {
                    "operationId": "listPlans",
                    "security": [{"bearer": []}],
                    "responses": {"200": {**ok, "content": {CONTENT_TYPE: {"example": BODY}}}},
                }
            },
            # Server.start polls without a header and Prism answers the secured operation 401 then, so
            # readiness uses an unsecured operation of its own.
            "/__ready": {
                "get": {
                    "operationId": "ready",
                    "responses": {"200": {**ok, "content": {"application/json": {"example": {"ready": True}}}}},
                }
            },
        },
    }
    spec = log_dir / f"{name}-openapi.json"
    spec.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    script = cache_dir / "node_modules" / "@stoplight" / "prism-cli" / "dist" / "index.js"
    # Static examples (no -d). `-v silent` is prism 5's log level switch (choices trace..fatal, silent);
    # --errors is about validation, not logging. Not -m: it crashes at start on Node 20 (prism 5.16 wants >= 24.18).
    port = free_port()
    cmd = [
        "node",
        str(script),
        "mock",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--verboseLevel",
        "info" if logging else "silent",
        str(spec),
    ]
    return Server(name, cmd, port, "/__ready", log_dir / f"{name}.log")


def check(server: Server) -> str | None:
    """None if the list operation answers 200 with the JSON body; else what it answered (a fast 401 is no figure)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", LIST, headers=BEARER)
        response = conn.getresponse()
        raw = response.read()
    except OSError as exc:
        return f"no answer: {exc}"
    finally:
        conn.close()
    ctype = response.getheader("Content-Type", "")
    try:
        same = json.loads(raw) == BODY
    except ValueError:
        same = False
    if response.status != 200 or not ctype.startswith("application/json") or not same:
        return f"HTTP {response.status} {ctype}: {raw[:200]!r}"
    return None


PEERS: dict[str, Callable[[Path, Path], Server]] = {
    "wiremock": lambda log, cache: wiremock(log, cache, journal=True),
    "wiremock-nojournal": lambda log, cache: wiremock(log, cache, journal=False),
    "prism": lambda log, cache: prism(log, cache, logging=True),
    "prism-silent": lambda log, cache: prism(log, cache, logging=False),
}


_DESCRIPTIONS = {
    "wiremock": "WireMock 3.13.2, request journal on",
    "wiremock-nojournal": "WireMock, no journal",
    "prism": "Prism 5.16.0, logging on",
    "prism-silent": "Prism, logging off",
}


def describe(name: str) -> str:
    return _DESCRIPTIONS.get(name, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--log-dir", type=Path, help="default: a new temporary directory, kept")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument(
        "--warmup",
        type=float,
        default=20.0,
        help="seconds of wrk before the measured run; WireMock's JIT needs ~20 s to level off",
    )
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", default=",".join(PEERS), help="comma-separated: " + ", ".join(PEERS))
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    if unknown := set(names) - set(PEERS):
        parser.error(f"unknown peer(s): {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    reason = install(args.cache_dir)
    if reason:
        print(f"peers skipped: {reason}")
        return 0
    print(f"install/verify: {time.perf_counter() - started:.1f} s, cache {args.cache_dir}")
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="dpa-peers-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"logs: {log_dir}\n")
    print("| peer | cold start s | warm-up req/s | req/s | p50 ms | p99 ms | non-2xx | RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    for name in names:
        server = PEERS[name](log_dir, args.cache_dir)
        try:
            server.start(timeout=START_TIMEOUT)
            problem = check(server)
            if problem:
                raise RuntimeError(f"wrong answer, not measured: {problem}")
            script = static_script("GET", LIST, BEARER)  # the same driver as run.py's "list plans (bearer)" row

            def drive(label: str, seconds: float, server: Server = server, script: Path = script) -> WrkResult:
                return run_wrk(
                    server.base_url,
                    script,
                    log_dir,
                    label,
                    duration=seconds,
                    connections=args.connections,
                    threads=args.threads,
                )

            first = drive(f"{name}-warmup", args.warmup) if args.warmup else None  # JIT warm-up, reported too
            result = drive(name, args.duration)
            print(
                f"| {name} | {server.cold_start_s:.2f} | {f'{first.rps:,.0f}' if first else '-'} | "
                f"{result.rps:,.0f} | {result.p50_ms:.2f} | {result.p99_ms:.2f} | "
                f"{result.non2xx + result.socket_errors} | {server.rss()[0] / 1024:.0f} |",
                flush=True,
            )
            failed += bool(result.non2xx or result.socket_errors)
        except Exception as exc:  # noqa: BLE001 - one broken peer must not hide the others' figures
            print(f"| {name} | failed: {exc} |", flush=True)
            failed += 1
        finally:
            server.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
