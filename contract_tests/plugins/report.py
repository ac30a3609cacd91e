"""The report: verdicts (violations, leniencies, observations), failing requests as curl lines, writes; secrets
redacted, control characters escaped; Markdown, JUnit properties and (--report-json) JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from contract_tests.options import kit_modules
from contract_tests.plugins.safety import WriteBlocked
from contract_tests.support.kit import KIT
from contract_tests.support.redact import curl_line, redact, redact_url
from contract_tests.support.verdicts import LeniencyFailure, Verdict

INTERFACES = {
    1: "1 OAuth (authorize, token)",
    2: "2 listPlans",
    3: "3 queryModelByPlanId",
    4: "4 saveTimingParam",
    5: "5 executePlan",
    6: "6 queryPlanRunOutParam",
    7: "7 callbacks",
    0: "general",
}
VERIFY_ARGV = "DPA_VERIFY_ARGV"  # set by `dpa-mock verify`: its own arguments, for the reproduce line
_SECRET_FLAGS = {"--client-secret": "$DPA_CLIENT_SECRET", "--other-client-secret": "$DPA_OTHER_CLIENT_SECRET"}


@dataclass
class Outcome:
    nodeid: str
    interfaces: list[int]
    outcome: str = "passed"
    message: str = ""
    curl: str | None = None
    duration: float = 0.0
    verdict: str | None = None  # violation | leniency (under --strict), for failures


@dataclass
class Collected:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    errors: list[str] = field(default_factory=list)  # collection and internal errors: each fails the run


_STATE = Collected()


# Generated tests (schemathesis) are named after the operation's path: map it to the interface.
_PATH_INTERFACES = {
    "oauth/authorize": 1,
    "oauth/token": 1,
    "queryPlanByUserId": 2,
    "queryModelByPlanId": 3,
    "saveTimingParam": 4,
    "opExecutePlanByApi": 5,
    "queryPlanRunOutParam": 6,
}


def _interfaces(item: pytest.Item) -> list[int]:
    found: list[int] = []
    for mark in item.iter_markers("interface"):
        found += [int(a) for a in mark.args]
    found += [n for fragment, n in _PATH_INTERFACES.items() if fragment in item.nodeid]
    return sorted(set(found)) or [0]


def modules_run(outcomes: list[Outcome]) -> list[str]:
    """The kit's modules with at least one test in this run (`verify --only`, `-k` and paths narrow it)."""
    return sorted({o.nodeid.split("::", 1)[0].rsplit("/", 1)[-1] for o in outcomes} & set(kit_modules()))


def _modules(outcomes: list[Outcome]) -> str:
    ran, known = modules_run(outcomes), kit_modules()
    if ran == known:
        return f"all {len(known)} of the kit's modules"
    left = [m for m in known if m not in ran]
    return f"{len(ran)} of {len(known)} ({', '.join(ran) or 'none'}): a partial run, without {', '.join(left)}"


def _is_kit_item(item: pytest.Item) -> bool:
    return Path(str(item.fspath)).resolve().is_relative_to(Path(__file__).resolve().parents[1])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    KIT.current_test = item.nodeid
    if _is_kit_item(item):
        _STATE.outcomes[item.nodeid] = Outcome(item.nodeid, _interfaces(item))
    yield
    KIT.current_test = None


def _redact_report(report: pytest.TestReport) -> None:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        report.longrepr = (longrepr[0], longrepr[1], redact(str(longrepr[2])))
    elif longrepr is not None:
        text = str(longrepr)
        clean = redact(text)
        if clean != text:
            report.longrepr = clean
    report.sections = [(title, redact(content)) for title, content in report.sections]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(WriteBlocked) and report.failed:
        # The check needed a write the safety options forbid: nothing was sent, so it was not done.
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: not sent: {call.excinfo.value}")
    _redact_report(report)  # before the terminal, JUnit XML or anyone else sees it
    record = _STATE.outcomes.get(item.nodeid)
    if record is None:
        return
    record.duration += report.duration
    if report.when == "call":
        for finding in KIT.by_test.get(item.nodeid, []):
            item.user_properties.append(("leniency", finding))
    if report.failed:
        record.outcome = "failed" if report.when == "call" else "error"
        record.verdict = _verdict(item.nodeid, call).value
        item.user_properties.append(("verdict", record.verdict))
        found = _check_failures(call.excinfo.value if call.excinfo is not None else None)
        record.message = redact(found) if found else _first_lines(report)
        sent = KIT.failing_request(item.nodeid)
        if sent is not None:
            record.curl = curl_line(sent.method, sent.url, sent.headers, sent.body)
    elif report.skipped and record.outcome == "passed":
        record.outcome = "skipped"
        record.message = str(report.longrepr[2]) if isinstance(report.longrepr, tuple) else "skipped"
        record.message = record.message.removeprefix("Skipped: ")


@pytest.hookimpl(trylast=True)
def pytest_exception_interact(node: pytest.Item, call: pytest.CallInfo[Any], report: pytest.TestReport) -> None:
    # schemathesis rewrites `longrepr` here (after makereport): redact again before the terminal prints it.
    _redact_report(report)


def _verdict(nodeid: str, call: pytest.CallInfo[Any]) -> Verdict:
    """A failure is a leniency only when every finding it raised was one (--strict); anything else is a violation."""
    raised = KIT.raised.get(nodeid, set())
    if call.excinfo is not None and call.excinfo.errisinstance(LeniencyFailure):
        return Verdict.LENIENCY
    if call.excinfo is not None and isinstance(call.excinfo.value, BaseExceptionGroup) and raised == {Verdict.LENIENCY}:
        return Verdict.LENIENCY
    return Verdict.VIOLATION


_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069\ufeff]")


def printable(text: str) -> str:
    """Control characters, lone surrogates and bidi overrides as `\\uXXXX`: fuzzed values must not turn the
    report into a "binary" file or reorder what a reader sees. Newlines and tabs stay."""
    return _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _check_failures(exc: BaseException | None) -> str | None:
    """Schemathesis' failures (one, or a group of them) as `- title: message` lines — the check that failed and
    why — instead of the first lines of an exception-group traceback. None for any other exception."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    if exc is None:
        return None
    walk(exc)
    if not any(getattr(e, "title", None) for e in leaves):
        return None
    lines = [f"{len(leaves)} failure(s):"]
    for e in leaves[:8]:
        title = getattr(e, "title", None) or type(e).__name__
        message = [ln for ln in str(getattr(e, "message", None) or e).splitlines() if ln.strip()][:6]
        lines.append(f"- {title}: " + "\n  ".join(message))
    return "\n".join(lines)


def _first_lines(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    lines = [ln for ln in redact(text).splitlines() if ln.strip()]
    return "\n".join(lines[:12])


def _reproduce(config: pytest.Config, seed: int) -> str:
    """The command that reruns this run with its seed: `dpa-mock verify …` when it was run that way."""
    verify = os.environ.get(VERIFY_ARGV)
    args = json.loads(verify) if verify else list(config.invocation_params.args)
    program = "dpa-mock verify" if verify else "pytest"
    out: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in _SECRET_FLAGS:
            out += [name, _SECRET_FLAGS[name]]  # left unquoted so the shell expands it
            skip_next = "=" not in arg
            continue
        if name in ("--hypothesis-seed", "--seed", "--junitxml", "--junit-xml", "--report", "--report-json"):
            skip_next = "=" not in arg
            continue
        out.append(shlex.quote(redact(arg)))
    seed_flag = f"--seed {seed}" if verify else f"--hypothesis-seed={seed}"
    if verify and "--" in out:
        out.insert(out.index("--"), seed_flag)
        return " ".join([program, *out])
    return " ".join([program, *out, seed_flag])


def _table(rows: list[list[str]], header: list[str]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |" for row in rows]
    return lines


def _callbacks(cfg: Any) -> str:
    if not cfg.callback_listen:
        return "no receiver (callback checks skipped)"
    url = KIT.callback_url or cfg.callback_public_url or "(receiver not started)"
    return f"receiver listening on {cfg.callback_listen}, targets told {redact_url(url)}"


def render(config: pytest.Config, exitstatus: int) -> str:
    cfg = KIT.config
    assert cfg is not None
    from contract_tests.plugins.target import _TARGET

    outcomes = list(_STATE.outcomes.values())
    totals = {k: sum(1 for o in outcomes if o.outcome == k) for k in ("passed", "failed", "error", "skipped")}
    base = _TARGET.base_url if _TARGET else (cfg.base_url or "(not started)")
    kind = "in-process emulator (dpa-mock, virtual clock)" if cfg.in_process else "live target"
    admin = _TARGET._admin if _TARGET else None
    lines = [
        "# DPA contract-test report",
        "",
        f"- **Date:** {dt.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- **Target:** {redact_url(base)} — {kind}",
        f"- **Time control (/__admin):** {'yes' if admin else 'no' if admin is False else 'not probed'}"
        f"{'' if cfg.use_admin else ' (forbidden by --no-admin)'}",
        f"- **Application:** client_id `{cfg.client_id}`, user `{cfg.user_id or '(default)'}`, scope `{cfg.scope}`",
        f"- **Verdict:** {'FAIL' if exitstatus else 'PASS'} — {summary(exitstatus)['violations']} violation(s), "
        f"{len(KIT.leniencies)} leniency(ies){' (--strict: they fail the run)' if cfg.strict else ''}, "
        f"{len(KIT.observations)} observation(s)",
        f"- **Result:** {totals['passed']} passed, {totals['failed']} failed, {totals['error']} errors, "
        f"{totals['skipped']} skipped in {time.monotonic() - _STATE.started:.1f} s (pytest exit status {exitstatus})",
        f"- **Modules:** {_modules(outcomes)}",
        f"- **Seed:** {cfg.seed} — reproduce with `{_reproduce(config, cfg.seed)}`",
        f"- **Writes:** executions {'allowed' if cfg.allow_writes else 'disabled'}"
        f"{' on every plan' if cfg.plan_ids is None else ' on ' + (', '.join(cfg.plan_ids) or 'no plan')}; "
        f"scenes {'allowed' if cfg.allow_scenes else 'disabled'}"
        f"{'' if cfg.scene_strategies is None else ' (' + '/'.join(cfg.scene_strategies) + ' only)'}; "
        f"max runs {cfg.max_runs if cfg.max_runs is not None else 'unlimited'}, "
        f"max scenes {cfg.max_scenes if cfg.max_scenes is not None else 'unlimited'}",
        f"- **Callbacks:** {_callbacks(cfg)}",
        f"- **Requests sent:** {KIT.request_count}",
        "",
        "## Checks per interface",
        "",
    ]
    rows = []
    for number, name in INTERFACES.items():
        mine = [o for o in outcomes if number in o.interfaces]
        if not mine:
            continue
        count = {k: sum(1 for o in mine if o.outcome == k) for k in totals}
        rows.append([name, str(count["passed"]), str(count["failed"] + count["error"]), str(count["skipped"])])
    lines += _table(rows, ["Interface", "passed", "failed", "skipped"]) + [""]
    if _STATE.errors:
        lines += [f"## Errors of the run ({len(_STATE.errors)}): modules that never ran count as failures", ""]
        for error in _STATE.errors:
            lines += ["```", error, "```", ""]

    failed = [o for o in outcomes if o.outcome in ("failed", "error")]
    violations = [o for o in failed if o.verdict != Verdict.LENIENCY.value]
    lines += [f"## Violations ({len(violations)}): broken promises of the document — they fail the run", ""]
    for o in failed:
        where = ", ".join(INTERFACES[i] for i in o.interfaces)
        lines += [
            f"### `{o.nodeid}` ({o.verdict or 'violation'}; {o.outcome}; interface {where})",
            "",
            "```",
            o.message,
            "```",
            "",
        ]
        if o.curl:
            lines += ["Failing request:", "", "```sh", o.curl, "```", ""]
    if not failed:
        lines += ["None.", ""]
    lenient = sorted(KIT.leniencies.values(), key=lambda f: (f.check, f.detail))
    lines += [
        f"## Leniencies ({len(lenient)}): the target accepts what the document forbids, or lacks an HTTP "
        f"nicety — {'they fail the run (--strict)' if cfg.strict else 'reported; --strict makes them fail'}",
        "",
    ]
    if lenient:
        for n, f in enumerate(lenient, 1):
            lines += [f"{n}. **{f.check}** — {f.detail} ({f.count}×, first in `{f.test}`)"]
            if f.curl:
                lines += ["", "   ```sh", "   " + f.curl, "   ```"]
        lines += [""]
    else:
        lines += ["None.", ""]

    skipped = [o for o in outcomes if o.outcome == "skipped"]
    reasons: dict[str, int] = {}
    for o in skipped:
        reasons[o.message] = reasons.get(o.message, 0) + 1
    lines += [f"## Skipped ({len(skipped)})", ""]
    lines += _table([[r, str(n)] for r, n in sorted(reasons.items())], ["Reason", "tests"]) if reasons else ["None."]
    lines += ["", "## Observations (the target's side of the document's ambiguities: reported, not judged)", ""]
    obs = sorted(KIT.observations.values(), key=lambda o: (o.topic, -o.count))
    lines += (
        _table(
            [[f"`{o.topic}`", o.detail, str(o.count), f"`{o.first_test}`"] for o in obs],
            ["Topic", "What the target does", "times", "first seen in"],
        )
        if obs
        else ["None."]
    )

    executions = [w for w in KIT.writes if w["kind"] == "execution"]
    scenes = [w for w in KIT.writes if w["kind"] == "scene"]
    lines += ["", "## Write operations performed", "", f"### Executions ({len(executions)})", ""]
    lines += (
        _table(
            [[str(w.get("processPlanId")), str(w.get("planInstanceId")), f"`{w.get('test')}`"] for w in executions],
            ["processPlanId", "planInstanceId", "test"],
        )
        if executions
        else ["None."]
    )
    lines += ["", f"### Scenes created ({len(scenes)})", ""]
    lines += (
        _table(
            [
                [
                    str(w.get("instanceId")),
                    str(w.get("processPlanId")),
                    str(w.get("executeStrategy")),
                    f"{w.get('intervals')} {w.get('dimension')}",
                    str(w.get("sceneName")),
                    f"`{w.get('test')}`",
                ]
                for w in scenes
            ],
            ["instanceId", "processPlanId", "strategy", "every/after", "sceneName", "test"],
        )
        if scenes
        else ["None."]
    )
    blocked = KIT.blocked
    lines += ["", f"### Requests blocked by the safety options ({len(blocked)})", ""]
    if blocked:
        per: dict[str, int] = {}
        for b in blocked:
            per[b["reason"]] = per.get(b["reason"], 0) + 1
        lines += _table([[r, str(n)] for r, n in sorted(per.items())], ["Reason", "requests"])
    else:
        lines += ["None."]
    return printable(redact("\n".join(lines) + "\n"))


def summary(exitstatus: int) -> dict[str, Any]:
    """Counts of the run; `violations` counts failed tests and collection/internal errors alike."""
    outcomes = list(_STATE.outcomes.values())
    failed = [o for o in outcomes if o.outcome in ("failed", "error")]
    return {
        "passed": sum(1 for o in outcomes if o.outcome == "passed"),
        "failed": len(failed),
        "skipped": sum(1 for o in outcomes if o.outcome == "skipped"),
        "violations": sum(1 for o in failed if o.verdict != Verdict.LENIENCY.value) + len(_STATE.errors),
        "leniencies": len(KIT.leniencies),
        "observations": len(KIT.observations),
        "errors": list(_STATE.errors),
        "strict": bool(KIT.config and KIT.config.strict),
        "seed": KIT.config.seed if KIT.config else None,
        "exit_status": exitstatus,
        "seconds": round(time.monotonic() - _STATE.started, 1),
        "target": redact_url(KIT.config.base_url or "in-process emulator") if KIT.config else None,
        "modules": modules_run(outcomes),
        "partial": modules_run(outcomes) != kit_modules(),
    }


def render_json(exitstatus: int) -> str:
    failed = [o for o in _STATE.outcomes.values() if o.outcome in ("failed", "error")]
    result = {
        "summary": summary(exitstatus),
        "violations": [
            {
                "test": o.nodeid,
                "outcome": o.outcome,
                "verdict": o.verdict or "violation",
                "interfaces": o.interfaces,
                "message": o.message,
                "request": o.curl,
            }
            for o in failed
            if o.verdict != Verdict.LENIENCY.value
        ]
        + [
            {
                "test": "(collection)",
                "outcome": "error",
                "verdict": "violation",
                "interfaces": [0],
                "message": e,
                "request": None,
            }
            for e in _STATE.errors
        ],
        "leniencies": [
            {
                "check": f.check,
                "detail": f.detail,
                "count": f.count,
                "test": f.test,
                "request": f.curl,
                "failed_run": bool(KIT.config and KIT.config.strict),
            }
            for f in sorted(KIT.leniencies.values(), key=lambda f: (f.check, f.detail))
        ],
        "observations": [
            {"topic": o.topic, "value": o.detail, "count": o.count, "test": o.first_test}
            for o in sorted(KIT.observations.values(), key=lambda o: (o.topic, o.detail))
        ],
    }
    # ensure_ascii: every control character and lone surrogate is an escape, never a raw byte.
    return redact(json.dumps(result, ensure_ascii=True, indent=2)) + "\n"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if report.failed and KIT.config is not None:
        # A module that cannot be collected never ran: that is a failure of the run, never "0 errors".
        _STATE.errors.append(collection_error(collector, report))


def collection_error(collector: pytest.Collector, report: pytest.CollectReport) -> str:
    """`test_schema.py::test_operation: <the error's own line>` and the end of the traceback: the module by its
    file (a generated collector's node id may lack it), the reason first (the traceback's tail may not hold it)."""
    where = report.nodeid or "collection"
    path = getattr(collector, "path", None)
    if path is not None and not where.split("::", 1)[0].endswith(".py"):
        where = Path(path).name + ("" if where.startswith("::") else "::") + where
    text = str(report.longrepr)
    reasons = [line[1:].strip() for line in text.splitlines() if line.startswith("E ") and line[1:].strip()]
    return printable(redact(f"{where}: {reasons[0] if reasons else 'not collected'}\n{text[-1500:]}"))


def pytest_internalerror(excrepr: Any) -> None:
    _STATE.errors.append(printable(redact(f"internal error of the kit: {str(excrepr)[-1500:]}")))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if KIT.config is None or not (_STATE.outcomes or _STATE.errors):
        return
    if _STATE.errors and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # e.g. --continue-on-collection-errors
    path = KIT.config.report_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(session.config, int(session.exitstatus)), encoding="utf-8")
    if KIT.config.report_json is not None:
        KIT.config.report_json.parent.mkdir(parents=True, exist_ok=True)
        KIT.config.report_json.write_text(render_json(int(session.exitstatus)), encoding="utf-8")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if KIT.config is not None and (_STATE.outcomes or _STATE.errors):
        s = summary(0)
        terminalreporter.write_line(
            f"contract verdict: {s['violations']} violation(s), {s['leniencies']} leniency(ies), "
            f"{s['observations']} observation(s); report {KIT.config.report_path} (seed {KIT.config.seed})"
        )
