"""Bounded chaos run (not in CI): normal clients against `dpa-mock serve` while hostile ones do their worst.

Phase 1, the default configuration: normal clients (login, list plans, execute with a callback, output params)
alongside 8 stalled connections (mid-headers and mid-body, reopened as the server closes them), oversized and
malformed requests, bursts of 1,000 connections and absurd clock advances. Phase 2, `--workers 2 --state`:
the same normal load while one worker is killed twice in a row. Asserted: every normal request succeeded (in
phase 2 a request cut off by the kill is retried once, and counted), the normal p99 stays under a bound, the
server is alive at the end, and every run the normal clients started finished with its callbacks accounted for.

    .venv/bin/python bench/chaos.py --seconds 30
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import EXECUTE, PLANS, POC, FlakyReceiver, audit

from mock_server.testing.server import ServerProcess

LIST = "/api/dpa/process/processPlan/queryPlanByUserId"
MODELS = "/api/dpa/process/processPlan/queryModelByPlanId"


class Normal:
    """The well-behaved clients' tally: latencies, failures, and the runs they started."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.failures: collections.Counter[str] = collections.Counter()
        self.retried = 0
        self.instances: list[str] = []

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


def normal_client(base: str, callback: str, stop: threading.Event, seed: int, tally: Normal, retry: bool) -> None:
    rnd, session = random.Random(seed), requests.Session()
    session.trust_env = False

    def call(method: str, path: str, **kw: Any) -> dict[str, Any] | None:
        nonlocal session
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                reply = session.request(method, base + path, timeout=10, **kw)
            except requests.ConnectionError as exc:
                if retry and attempt == 1:  # the worker holding this connection was killed: a client retries
                    with tally.lock:
                        tally.retried += 1
                    session = requests.Session()
                    session.trust_env = False
                    continue
                with tally.lock:
                    tally.failures[f"{path}: {type(exc).__name__}"] += 1
                return None
            elapsed = time.perf_counter() - started
            body = reply.json()
            with tally.lock:
                tally.latencies.append(elapsed)
                if reply.status_code != 200 or body.get("code") != 200:
                    tally.failures[f"{path}: {reply.status_code} {body.get('code')}"] += 1
                    return None
            return body
        return None

    headers: dict[str, str] = {}
    i = 0
    while not stop.is_set():
        if i % 40 == 0:
            code = call(
                "GET",
                "/api/dp/auth/oauth/authorize",
                params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
            )
            token = code and call(
                "POST",
                "/api/dp/auth/oauth/token",
                json={"code": code["data"]["code"], **POC, "grant_type": "authorization_code"},
            )
            if token:
                headers = {"Authorization": "Bearer " + token["data"]["access_token"]}
        i += 1
        call("GET", LIST, headers=headers)
        call("POST", MODELS, headers=headers, json={"processPlanId": "acf42dd3"})
        if i % 4 == 0:
            plan = rnd.choice(PLANS)
            started = call(
                "POST", EXECUTE.format(plan), headers=headers, json={"processPlanId": plan, "callbackUrl": callback}
            )
            if started:
                with tally.lock:
                    tally.instances.append(started["data"][0]["planInstanceId"])
        time.sleep(rnd.uniform(0, 0.005))


# -- the hostile ones ------------------------------------------------------------------------------------------
def stallers(port: int, stop: threading.Event, counts: collections.Counter[str]) -> None:
    """Keep 8 connections stalled (4 mid-headers, 4 mid-body), opening a new one when the server closes one."""
    heads = [
        b"GET " + LIST.encode() + b" HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"POST " + MODELS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"processPlanId"',
    ]
    open_socks: list[tuple[socket.socket, float]] = []
    while not stop.is_set():
        while len(open_socks) < 8:
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(heads[len(open_socks) % 2])
            s.setblocking(False)
            open_socks.append((s, time.monotonic()))
            counts["stalled connections opened"] += 1
        for s, opened in list(open_socks):
            try:
                if s.recv(65536) == b"":
                    raise ConnectionResetError
            except BlockingIOError:
                continue
            except OSError:
                pass
            counts["stalled connections closed by the server"] += 1
            counts["longest stall before the close, ms"] = max(
                counts["longest stall before the close, ms"], int((time.monotonic() - opened) * 1000)
            )
            s.close()
            open_socks.remove((s, opened))
        stop.wait(0.05)
    for s, _ in open_socks:
        s.close()


def _raw(port: int, data: bytes, shut: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        try:
            return s.recv(200)
        except OSError:
            return b""


def login(base: str) -> str:
    code = requests.get(
        base + "/api/dp/auth/oauth/authorize",
        timeout=10,
        params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
    )
    token = requests.post(
        base + "/api/dp/auth/oauth/token",
        timeout=10,
        json={"code": code.json()["data"]["code"], **POC, "grant_type": "authorization_code"},
    )
    return "Bearer " + token.json()["data"]["access_token"]


def bad_requests(port: int, stop: threading.Event, counts: collections.Counter[str]) -> None:
    """Oversized and malformed requests, and absurd admin values, in turn; each answer's status is counted."""
    bearer = login(f"http://127.0.0.1:{port}").encode()  # so that bodies are read, not refused for want of it
    json_post = (
        b"POST " + MODELS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + bearer + b"\r\n"
    )
    cases: list[tuple[str, Callable[[], bytes]]] = [
        ("2 MB body", lambda: _raw(port, json_post + b"Content-Length: 2000000\r\n\r\n" + b"x" * 1000)),
        ("JSON 1,000 deep", lambda: _body(port, json_post, b"[" * 1000 + b"]" * 1000)),
        ("5,000-digit number", lambda: _body(port, json_post, b'{"processPlanId": ' + b"7" * 5000 + b"}")),
        (
            "body shorter than Content-Length, then close",
            lambda: _raw(port, json_post + b"Content-Length: 500\r\n\r\n{}", shut=True),
        ),
        ("NUL in the request line", lambda: _raw(port, b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n")),
        ("invalid bytes in a header", lambda: _raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-A: \xff\x00\r\n\r\n")),
        (
            "101 headers",
            lambda: _raw(
                port, b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"
            ),
        ),
        ("1 MB header", lambda: _raw(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n")),
        ("200 KB URL", lambda: _raw(port, b"GET /?" + b"a" * 200_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")),
        (
            "advance 1e308 s",
            lambda: _body(
                port,
                b"POST /__admin/clock/advance HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
                b'{"seconds": 1e308}',
            ),
        ),
        (
            "secret of the wrong type",
            lambda: _body(
                port,
                b"POST /api/dp/auth/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n",
                b'{"client_secret": 7777777777}',
            ),
        ),
    ]
    i = 0
    while not stop.is_set():
        name, send = cases[i % len(cases)]
        i += 1
        try:
            answer = send()
        except OSError as exc:
            answer = type(exc).__name__.encode()
        status = answer.split(b" ")[1].decode(errors="replace") if answer.startswith(b"HTTP/") else "closed"
        counts[f"{name} -> {status}"] += 1
        stop.wait(0.02)


def _body(port: int, head: bytes, body: bytes) -> bytes:
    return _raw(port, head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)


def bursts(port: int, stop: threading.Event, counts: collections.Counter[str], every: float) -> None:
    """Every `every` seconds, 1,000 connections at once, each asking for the clock, then all closed."""
    while not stop.wait(every):
        socks = []
        for _ in range(1000):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(b"GET /__admin/clock HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(s)
            except OSError:
                counts["burst connections refused"] += 1
        answered = 0
        for s in socks:
            with contextlib.suppress(OSError):
                answered += s.recv(20).startswith(b"HTTP/1.1 200")
            s.close()
        counts["burst connections opened"] += len(socks)
        counts["burst connections answered 200"] += answered


def stall_rows(args: argparse.Namespace, log: Path) -> list[dict[str, Any]]:
    """wrk on list plans (16 connections) without, then with, 8 stalled connections: req/s and p99."""
    rows = []
    with ServerProcess("--set", f"read_timeout={args.read_timeout}", log=log) as server:
        bearer = login(server.base_url)
        for stalled in (False, True):
            stop, counts = threading.Event(), collections.Counter()
            staller = threading.Thread(target=stallers, args=(server.port, stop, counts), daemon=True)
            if stalled:
                staller.start()
                time.sleep(0.5)
            out = subprocess.run(
                [
                    "wrk",
                    "-t2",
                    "-c16",
                    f"-d{args.wrk_seconds:g}s",
                    "--latency",
                    "-H",
                    f"Authorization: {bearer}",
                    server.base_url + LIST,
                ],
                capture_output=True,
                text=True,
                timeout=args.wrk_seconds + 30,
            ).stdout
            stop.set()
            if stalled:
                staller.join()
            p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
            rows.append(
                {
                    "row": "list plans, wrk 16 connections" + (", 8 stalled connections" if stalled else ""),
                    "req/s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                    "p99 ms": round(float(p99.group(1)) * scale[p99.group(2)], 2) if p99 else None,
                    "non-2xx": int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0,
                    "stalled connections closed by the server": counts["stalled connections closed by the server"],
                }
            )
    return rows


# -- phases ----------------------------------------------------------------------------------------------------
def _workers(pid: int) -> set[int]:
    out = set()
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(stat[1]) == pid and stat[0] != "Z":
            out.add(int(entry))
    return out


def kill_worker_twice(pid: int, counts: collections.Counter[str]) -> None:
    """SIGKILL a worker, wait for its replacement, SIGKILL the replacement at once."""
    victims: set[int] = set()
    for _ in range(2):
        deadline = time.monotonic() + 30
        while len(_workers(pid) - victims) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        victim = max(_workers(pid) - victims)
        os.kill(victim, signal.SIGKILL)
        victims.add(victim)
        counts["workers killed"] += 1
    deadline = time.monotonic() + 30
    while len(_workers(pid) - victims) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    counts["workers alive after the kills"] = len(_workers(pid) - victims)


def run_phase(
    name: str,
    args: argparse.Namespace,
    server_args: list[str],
    retry: bool,
    hostile: Callable[[ServerProcess, threading.Event, collections.Counter[str]], list[threading.Thread]],
    log: Path,
) -> dict[str, Any]:
    receiver = FlakyReceiver()
    tally, counts = Normal(), collections.Counter()
    stop = threading.Event()
    with ServerProcess(*server_args, log=log) as server:
        threads = [
            threading.Thread(
                target=normal_client, daemon=True, args=(server.base_url, receiver.url, stop, n, tally, retry)
            )
            for n in range(args.clients)
        ]
        threads += hostile(server, stop, counts)
        for t in threads:
            t.start()
        stop.wait(args.seconds)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        alive = server.proc is not None and server.proc.poll() is None
        answers = requests.get(server.base_url + "/__admin/clock", timeout=10).json()["code"] == 200
        deadline = time.monotonic() + 30  # runs take about 2 s; retries add under a second
        while True:
            verdict = audit(server.base_url, receiver, tally.instances)
            if (
                not (verdict.get("not terminal") or verdict.get("statuses unaccounted for"))
                or time.monotonic() > deadline
            ):
                break
            time.sleep(1)
    receiver.server.shutdown()
    requests_total = len(tally.latencies) + sum(tally.failures.values())
    return {
        "phase": name,
        "normal requests": requests_total,
        "normal failures": dict(tally.failures),
        "retried after a connection cut by a kill": tally.retried,
        "success rate": (requests_total - sum(tally.failures.values())) / max(requests_total, 1),
        "p50 ms": round(tally.p(0.50), 2),
        "p99 ms": round(tally.p(0.99), 2),
        "max ms": round(tally.p(1.0), 1),
        "runs started": len(tally.instances),
        "audit": verdict,
        "alive at the end": alive and answers,
        "hostile": dict(sorted(counts.items())),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds per phase (default 30)")
    parser.add_argument("--clients", type=int, default=4, help="normal client threads (default 4)")
    parser.add_argument(
        "--p99-ms", type=float, default=100.0, help="bound on the normal clients' p99 under chaos (default 100 ms)"
    )
    parser.add_argument("--burst-every", type=float, default=10.0, help="seconds between bursts (default 10)")
    parser.add_argument("--read-timeout", type=float, default=2.0, help="the server's read_timeout (default 2 s)")
    parser.add_argument(
        "--wrk-seconds",
        type=float,
        default=5.0,
        help="seconds of each wrk stall row (default 5; skipped without wrk on PATH)",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="dpa-chaos-"))
    ok = True
    if shutil.which("wrk"):
        rows = stall_rows(args, tmp / "stall.log")
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        stalled = rows[-1]
        ok = stalled["p99 ms"] is not None and stalled["p99 ms"] < 50 and stalled["non-2xx"] == 0
        print(f"## 8 stalled connections: others' p99 under 50 ms: {'PASS' if ok else 'FAIL'}\n")
    else:
        print("(wrk not on PATH: the stall rows are skipped)\n")
    base_args = ["--set", f"read_timeout={args.read_timeout}"]

    def phase1(
        server: ServerProcess, stop: threading.Event, counts: collections.Counter[str]
    ) -> list[threading.Thread]:
        return [
            threading.Thread(target=stallers, args=(server.port, stop, counts), daemon=True),
            threading.Thread(target=bad_requests, args=(server.port, stop, counts), daemon=True),
            threading.Thread(target=bursts, args=(server.port, stop, counts, args.burst_every), daemon=True),
        ]

    def phase2(
        server: ServerProcess, stop: threading.Event, counts: collections.Counter[str]
    ) -> list[threading.Thread]:
        assert server.proc is not None
        pid = server.proc.pid

        def killer() -> None:
            if not stop.wait(args.seconds / 3):
                kill_worker_twice(pid, counts)

        return [
            threading.Thread(target=killer, daemon=True),
            threading.Thread(target=stallers, args=(server.port, stop, counts), daemon=True),
        ]

    results = [
        run_phase(
            "default configuration: stallers, bad requests, bursts, absurd advances",
            args,
            base_args,
            False,
            phase1,
            tmp / "phase1.log",
        ),
        run_phase(
            "--workers 2 --state: a worker killed twice in a row, stallers",
            args,
            [*base_args, "--workers", "2", "--state", str(tmp / "state.db")],
            True,
            phase2,
            tmp / "phase2.log",
        ),
    ]
    for r in results:
        passed = (
            r["success rate"] == 1.0
            and r["p99 ms"] < args.p99_ms
            and r["alive at the end"]
            and not r["audit"].get("not terminal")
            and not r["audit"].get("statuses unaccounted for")
        )
        ok &= passed
        print(f"## {r['phase']}: {'PASS' if passed else 'FAIL'}")
        print(json.dumps({k: v for k, v in r.items() if k != "phase"}, indent=2, ensure_ascii=False))
    print(f"\nlogs in {tmp}\n**{'PASS' if ok else 'FAIL'}**")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
