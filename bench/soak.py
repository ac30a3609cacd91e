"""Bounded soak test (not in CI): minutes of mixed traffic against `dpa-mock serve`, then an audit.

OAuth logins, plan lists, executions with callbacks to a receiver that fails one request in three, and
output-parameter reads, from several client threads on loopback. Afterwards every run must be terminal,
every status of every run must have reached the receiver (or have been refused at all four of its
attempts), no answer may be a 5xx, and the server's memory must stay flat. Exit status 1 otherwise.

    .venv/bin/python bench/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mock_server.testing.server import ServerProcess

POC = {"client_id": "JhYhK/XcFKuVlpVijwLCkw==", "client_secret": "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU="}
PLANS = ["acf42dd3", "c3d9f4e5", "e5f2b7c9"]  # succeed, fail at node 2, random: every run ends by itself
EXECUTE = "/api/dpa/process//processPlan/opExecutePlanByApi/{}"


class FlakyReceiver:
    """Answers every third callback with HTTP 500, the others with SUCCESS; counts acknowledged deliveries."""

    def __init__(self) -> None:
        self.acked: dict[str, set[str]] = collections.defaultdict(set)
        # Refused attempts (HTTP 500) per instance and status.
        self.failed: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        self.received = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                with outer._lock:
                    outer.received += 1
                    fail = outer.received % 3 == 0
                    instance, status = payload.get("planInstanceId", ""), payload.get("status", "")
                    if fail:
                        outer.failed[instance][status] += 1
                    else:
                        outer.acked[instance].add(status)
                body = b"FAIL" if fail else b"SUCCESS"
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` and its children, from /proc."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(entry.name) != pid and int(stat[1]) != pid:
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1024


def client(base: str, callback: str, deadline: float, seed: int, stats: dict[str, Any]) -> None:
    rnd, session = random.Random(seed), requests.Session()
    headers: dict[str, str] = {}
    i = 0
    while time.monotonic() < deadline:
        if i % 50 == 0:  # a fresh OAuth dance now and then
            code = session.get(
                base + "/api/dp/auth/oauth/authorize",
                params={"client_id": POC["client_id"], "response_type": "code", "scope": "default"},
                timeout=30,
            )
            token = session.post(
                base + "/api/dp/auth/oauth/token",
                timeout=30,
                json={"code": code.json()["data"]["code"], **POC, "grant_type": "authorization_code"},
            )
            headers = {"Authorization": "Bearer " + token.json()["data"]["access_token"]}
            record(stats, code), record(stats, token)
        i += 1
        record(stats, session.get(base + "/api/dpa/process/processPlan/queryPlanByUserId", headers=headers, timeout=30))
        plan = rnd.choice(PLANS)
        reply = session.post(
            base + EXECUTE.format(plan),
            headers=headers,
            timeout=30,
            json={"processPlanId": plan, "callbackUrl": callback},
        )
        record(stats, reply)
        if reply.status_code == 200:
            instance = reply.json()["data"][0]["planInstanceId"]
            with stats["lock"]:
                stats["instances"].append(instance)
            record(
                stats,
                session.get(
                    base + "/api/dpa/process//processPlan/queryPlanRunOutParam",
                    headers=headers,
                    timeout=30,
                    params={"processPlanId": plan, "planInstanceId": instance},
                ),
            )
        time.sleep(rnd.uniform(0, 0.01))


def record(stats: dict[str, Any], response: requests.Response) -> None:
    with stats["lock"]:
        stats["statuses"][response.status_code] += 1


def audit(base: str, receiver: FlakyReceiver, instances: list[str]) -> dict[str, int]:
    """Every run terminal; every status it entered acknowledged at the receiver or given up after 4 attempts."""
    out = collections.Counter()
    for instance in instances:
        reply = requests.get(base + f"/__admin/runs/{instance}", timeout=30).json()
        if reply["code"] == 404:
            # Forgotten beyond runs_keep, which only ever drops finished runs: these plans never pend, so
            # the run went DEFAULT, RUNNING and one of SUCCESS/FAIL — the receiver must account for those.
            out["pruned (finished, beyond runs_keep)"] += 1
            seen = receiver.acked.get(instance, set()) | {s for s, n in receiver.failed[instance].items() if n == 4}
            entered = {"DEFAULT", "RUNNING"} | (seen & {"SUCCESS", "FAIL"})
            if len(seen & {"SUCCESS", "FAIL"}) != 1:
                out["statuses unaccounted for"] += 1  # no terminal status arrived, or both did
                continue
        else:
            run = reply["data"]
            if run["status"] not in ("SUCCESS", "FAIL"):
                out["not terminal"] += 1
                continue
            entered = {h["status"] for h in run["history"]}
        missing = entered - receiver.acked.get(instance, set())
        # Not acknowledged is fine only as the platform giving up: exactly 1 + 3 attempts, all refused.
        gave_up = {s for s in missing if receiver.failed[instance][s] == 4}
        out["statuses given up after 4 attempts"] += len(gave_up)
        out["statuses unaccounted for"] += len(missing - gave_up)
        out["terminal, callbacks accounted for"] += missing == gave_up
    return dict(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    receiver = FlakyReceiver()
    stats: dict[str, Any] = {"lock": threading.Lock(), "statuses": collections.Counter(), "instances": []}
    with ServerProcess() as server:
        assert server.proc is not None  # started by the with statement
        base, pid = server.base_url, server.proc.pid
        started = time.monotonic()
        deadline = started + args.minutes * 60
        threads = [
            threading.Thread(target=client, args=(base, receiver.url, deadline, n, stats), daemon=True)
            for n in range(args.clients)
        ]
        for t in threads:
            t.start()
        samples = []
        while any(t.is_alive() for t in threads):
            samples.append((round(time.monotonic() - started), rss_mb(pid)))
            time.sleep(min(30.0, args.minutes * 6))
        for t in threads:
            t.join()
        time.sleep(15)  # the last runs finish (about 2 s) and their retries land (backoff 0.7 s in all)
        samples.append((round(time.monotonic() - started), rss_mb(pid)))
        verdict = audit(base, receiver, stats["instances"])
    server_errors = sum(n for code, n in stats["statuses"].items() if code >= 500)
    quarter = samples[max(1, len(samples) // 4)][1]
    growth = (samples[-1][1] - quarter) / quarter
    print(f"# soak: {args.minutes:g} min, {args.clients} clients, receiver failing 1 in 3\n")
    print(f"- requests by HTTP status: {dict(sorted(stats['statuses'].items()))}")
    print(f"- runs started: {len(stats['instances'])}; audit: {verdict}")
    print(f"- callbacks received: {receiver.received}")
    print(f"- server RSS (s, MB): {samples}")
    print(f"- RSS growth from the first quarter to the end: {growth:+.1%}")
    ok = (
        server_errors == 0
        and not verdict.get("not terminal")
        and not verdict.get("statuses unaccounted for")
        and growth < 0.2
    )
    print(f"\n**{'PASS' if ok else 'FAIL'}**")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
