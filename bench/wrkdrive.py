"""Drive one endpoint with wrk: generate the Lua script, run wrk, read back the numbers the script prints."""

from __future__ import annotations

import json
import math
import resource
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Every script shares this tail: count non-2xx answers per wrk thread (wrk's own counter only sees >= 400),
# keep the first bad answer for the warning, and print one JSON line the runner parses (no unit guessing).
# (No request-count limit: wrk.thread:stop() ends a thread's requests, but wrk still waits out -d.)
_COMMON = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end

bad = 0
bad_status = 0
bad_body = ""

function check(status, body)
  if status < 200 or status >= 300 then
    bad = bad + 1
    if bad_status == 0 then
      bad_status = status
      bad_body = string.sub(body or "", 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total_bad, first_status, first_body, extra = 0, 0, "", {}
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
    if first_status == 0 and t:get("bad_status") ~= 0 then
      first_status = t:get("bad_status")
      first_body = t:get("bad_body")
    end
    for _, name in ipairs(EXTRA) do
      extra[name] = (extra[name] or 0) + (t:get(name) or 0)
    end
  end
  local parts = {}
  for name, value in pairs(extra) do
    table.insert(parts, string.format('"%s":%d', name, value))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"non2xx":%d,"first_bad_status":%d,"socket_errors":%d,"timeouts":%d,"extra":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, total_bad, first_status,
    e.connect + e.read + e.write, e.timeout, table.concat(parts, ",")))
  io.write("BENCH_BAD_BODY " .. string.gsub(first_body, "[\r\n]", " ") .. "\n")
end
"""

_STATIC = r"""
wrk.method = METHOD
wrk.path = PATH
wrk.body = BODY
HEADERS_SETUP
EXTRA = {}
function response(status, headers, body)
  check(status, body)
end
"""

# authorize then token on each connection's thread: every authorization code a response carries goes on a
# queue; the next request the thread makes redeems the oldest queued code, else asks for a new code. A
# queue (not a flag) because a wrk thread's connections interleave: the response that brought a code is
# not necessarily followed by that connection's next request.
_OAUTH = r"""
queue = {}
head, tail = 1, 0
codes = 0
tokens = 0
EXTRA = {"codes", "tokens"}
local authorize = AUTHORIZE_PATH
local token_path = TOKEN_PATH
local token_body = TOKEN_BODY

function request()
  if tail >= head then
    local code = queue[head]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", token_path, {["Content-Type"] = "application/json"},
                      string.format(token_body, code))
  end
  return wrk.format("GET", authorize)
end

function response(status, headers, body)
  check(status, body)
  if status ~= 200 then return end
  local code = string.match(body, '"code":%s*"([^"]+)"')
  if code then
    codes = codes + 1
    tail = tail + 1
    queue[tail] = code
  elseif string.find(body, '"access_token"', 1, true) then
    tokens = tokens + 1
  end
end
"""


# One fixed request, like _STATIC, that also keeps the id every 2xx answer carries (PATTERN's capture);
# done() writes every thread's ids to IDS_FILE, one a line, so the runner can check them against the server.
_IDS = r"""
wrk.method = METHOD
wrk.path = PATH
wrk.body = BODY
HEADERS_SETUP
EXTRA = {"ids_n"}
ids = {}
ids_n = 0
function response(status, headers, body)
  check(status, body)
  if status >= 200 and status < 300 then
    local id = string.match(body, PATTERN)
    if id then
      ids_n = ids_n + 1
      ids[ids_n] = id
    end
  end
end
"""

_IDS_DONE = r"""
local _done = done
function done(summary, latency, requests)
  local f = assert(io.open(IDS_FILE, "w"))
  for _, t in ipairs(threads) do
    for _, id in ipairs(t:get("ids") or {}) do
      f:write(id, "\n")
    end
  end
  f:close()
  _done(summary, latency, requests)
end
"""


def _lua(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string literal is a valid Lua string literal here


def static_script(method: str, path: str, headers: dict[str, str] | None = None, body: str | None = None) -> str:
    """One fixed request, built once per wrk thread (wrk's fastest mode)."""
    setup = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in (headers or {}).items())
    text = (
        _STATIC.replace("METHOD", _lua(method))
        .replace("PATH", _lua(path))
        .replace("BODY", _lua(body) if body is not None else "nil")
        .replace("HEADERS_SETUP", setup)
    )
    return text + _COMMON


def ids_script(
    method: str, path: str, headers: dict[str, str] | None, body: str | None, pattern: str, ids_file: Path
) -> str:
    """static_script that also writes the id captured by the Lua `pattern` from each 2xx answer to ids_file."""
    setup = "\n".join(f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in (headers or {}).items())
    text = (
        _IDS.replace("METHOD", _lua(method))
        .replace("PATH", _lua(path))
        .replace("BODY", _lua(body) if body is not None else "nil")
        .replace("HEADERS_SETUP", setup)
        .replace("PATTERN", _lua(pattern))
    )
    return text + _COMMON + _IDS_DONE.replace("IDS_FILE", _lua(str(ids_file)))


def oauth_script(authorize_path: str, token_path: str, token_body_format: str) -> str:
    """authorize+token pairs; `token_body_format` has one `%s` for the code (Lua string.format)."""
    text = (
        _OAUTH.replace("AUTHORIZE_PATH", _lua(authorize_path))
        .replace("TOKEN_PATH", _lua(token_path))
        .replace("TOKEN_BODY", _lua(token_body_format))
    )
    return text + _COMMON


@dataclass
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    timeouts: int
    first_bad: str = ""
    extra: dict[str, int] = field(default_factory=dict)
    wrk_cpu_s: float = 0.0  # wrk's own CPU time (user + system) during the run
    server_cpu_s: dict[int, float] = field(default_factory=dict)  # filled by the caller: CPU s per server pid
    machine_cpu_s: float = 0.0  # filled by the caller: the whole machine's busy CPU seconds meanwhile

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(
    base_url: str,
    script: str,
    script_dir: Path,
    name: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk once with --latency; raise RuntimeError with wrk's output if it printed no result."""
    path = script_dir / f"{name}.lua"
    path.write_text(script, encoding="utf-8")
    cmd = [
        "wrk",
        "--latency",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, math.ceil(duration))}s",
        "--timeout",
        f"{timeout_s:g}s",
        "-s",
        str(path),
        base_url,
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk is the only child reaped in between
    wrk_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data, bad_body = None, ""
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            data = json.loads(line[len("BENCH_JSON ") :])
        elif line.startswith("BENCH_BAD_BODY "):
            bad_body = line[len("BENCH_BAD_BODY ") :].strip()
    if data is None:
        raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {proc.stdout[-500:]} {proc.stderr[-500:]}")
    first_bad = f"HTTP {data['first_bad_status']}: {bad_body}" if data["first_bad_status"] else ""
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non2xx=data["non2xx"],
        socket_errors=data["socket_errors"],
        timeouts=data["timeouts"],
        first_bad=first_bad,
        extra=data["extra"],
        wrk_cpu_s=wrk_cpu,
    )
