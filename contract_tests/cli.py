"""`dpa-mock verify`: the contract kit as a command, from any directory (needs the `[kit]` extra)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from contract_tests.options import DEFAULT_JUNIT, DEFAULT_REPORT, NUMBER_RANGES, OPTIONS, kit_modules, number_problem

# Options of the kit that the command spells differently (pytest owns --strict).
_RENAMED = {"--dpa-strict": "--strict"}
_KINDS: dict[str, Any] = {"int": int, "float": float, "str": str}


def _kit_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per kit option (the same flags, help and DPA_* variables as `pytest contract_tests`)."""
    for dest, flag, env, kind, text in reversed(OPTIONS):
        name = _RENAMED.get(flag, flag)
        help_text = f"{text} [env {env}]"
        if kind == "bool":
            command = click.option(name, dest, is_flag=True, default=None, help=help_text)(command)
        elif kind == "list":
            command = click.option(name, dest, multiple=True, help=help_text)(command)
        else:
            command = click.option(name, dest, type=_KINDS[kind], default=None, help=help_text)(command)
    return command


def only_names() -> list[str]:
    """The kit's check modules by the name `--only` takes: `test_oauth.py` is `oauth`."""
    return [name.removeprefix("test_").removesuffix(".py") for name in kit_modules()]


def only_modules(names: tuple[str, ...]) -> list[str]:
    """`--only` values (repeated or comma-separated; `oauth`, `test_oauth` and `test_oauth.py` alike) as module
    names, in the kit's order; a name that is no kit module is a usage error naming the modules there are."""
    known = only_names()
    wanted: set[str] = set()
    for value in names:
        for name in filter(None, (part.strip() for part in value.split(","))):
            module = name.removesuffix(".py").removeprefix("test_")
            if module not in known:
                raise click.UsageError(f"--only {name}: no such kit module; the kit's modules: {', '.join(known)}")
            wanted.add(module)
    if names and not wanted:  # `--only ""` (an empty variable, say) must not quietly run the whole kit
        raise click.UsageError(f"--only needs a module name; the kit's modules: {', '.join(known)}")
    return [module for module in known if module in wanted]


def pytest_args(values: dict[str, Any], extra: list[str], ini: Path, modules: list[str] | None = None) -> list[str]:
    """The pytest command line for these option values: the installed package (or only `modules` of it), the
    kit's plugin first."""
    # The plugin by module, first; its pytest11 entry point (dpa_mock_kit) is blocked, or pytest would register
    # the same module a second time under that name and stop with "Plugin already registered".
    args = [
        "--pyargs",
        *([f"contract_tests.test_{module}" for module in modules] if modules else ["contract_tests"]),
        "-p",
        "contract_tests.plugin",
        "-p",
        "no:dpa_mock_kit",
        "-p",
        "no:cacheprovider",
        # anyio's plugin (installed with httpx and others) imports trio and asyncio at start-up, 0.15 s of CPU
        # per run for a kit without one async test.
        "-p",
        "no:anyio",
        # A module that cannot be collected (a target whose authorize gives no token fails schemathesis' case
        # building at collection) is an error of the run, and the other modules still say what they find.
        "--continue-on-collection-errors",
        "-c",
        str(ini),
        "--rootdir",
        os.getcwd(),
        "-q",
    ]
    for dest, flag, _env, kind, _text in OPTIONS:
        value = values.get(dest)
        if value is None or value == () or value is False:
            continue
        if kind == "bool":
            args.append(flag)
        elif kind == "list":
            for item in value:
                args += [flag, str(item)]
        else:
            args += [flag, str(value)]
    if values.get("seed") is not None:
        args.append(f"--hypothesis-seed={values['seed']}")
    args += ["--junitxml", values.get("junitxml") or DEFAULT_JUNIT]
    return args + list(extra)


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": ["-h", "--help"]}
)
@_kit_options
@click.option("--seed", type=int, default=None, help="Seed of every property test (printed in the report).")
@click.option(
    "--junitxml", type=click.Path(dir_okay=False), default=None, help=f"JUnit XML path (default {DEFAULT_JUNIT})."
)
@click.option("--thorough", is_flag=True, help="About 7x more examples per property, with shrinking.")
@click.option(
    "--only",
    "only",
    multiple=True,
    metavar="MODULE",
    help="Run only these kit modules (repeat, or separate with commas), e.g. `--only oauth,plans`: "
    + ", ".join(only_names())
    + ". The report says the run was partial.",
)
@click.option(
    "--write-profile",
    "write_profile",
    type=click.Path(dir_okay=False),
    default=None,
    help="After the run, write the emulator profile (YAML) that reproduces what was observed on the "
    "target: `dpa-mock serve --profile FILE`. Points not observed keep the default, said in a comment.",
)
@click.pass_context
def verify(ctx: click.Context, /, **values: Any) -> None:
    """Run the contract kit against a deployment: exit 0 without violations, 1 with any, 2 on a usage error.

    Without --base-url it checks the bundled emulator in-process. Arguments after `--` go to pytest
    (e.g. `-- -k oauth`). Every option also reads its DPA_* variable (keep the secret in DPA_CLIENT_SECRET).
    """
    try:
        import pytest
    except ImportError:
        click.echo("dpa-mock verify needs the kit's dependencies: pip install 'dpa-mock[kit]'", err=True)
        sys.exit(2)
    base_url = values.get("dpa_base_url") or os.environ.get("DPA_BASE_URL")
    if base_url and not (
        (values.get("dpa_client_id") or os.environ.get("DPA_CLIENT_ID"))
        and (values.get("dpa_client_secret") or os.environ.get("DPA_CLIENT_SECRET"))
    ):
        raise click.UsageError(
            "a live target (--base-url) needs --client-id and the secret (DPA_CLIENT_SECRET, or --client-secret)"
        )
    for dest in NUMBER_RANGES:
        problem = number_problem(dest, _option(values, dest))
        if problem:
            raise click.UsageError(problem)
    modules = only_modules(values.pop("only", ()))
    if base_url:
        _reachable(str(base_url), values)
        _credentials_accepted(str(base_url), values)
    report = Path(values.get("dpa_report") or os.environ.get("DPA_REPORT") or DEFAULT_REPORT)
    if not values.get("dpa_report_json") and not os.environ.get("DPA_REPORT_JSON"):
        values["dpa_report_json"] = str(report.with_suffix(".json"))
    report_json = Path(values.get("dpa_report_json") or os.environ["DPA_REPORT_JSON"])
    write_profile = values.pop("write_profile", None)
    if values.pop("thorough", False):
        os.environ["DPA_HYPOTHESIS_PROFILE"] = "dpa-contract-thorough"
    os.environ["DPA_VERIFY_ARGV"] = json.dumps(
        sys.argv[sys.argv.index("verify") + 1 :] if "verify" in sys.argv else []
    )  # the report's reproduce line
    for stale in (report, report_json):
        stale.unlink(missing_ok=True)  # a report left from an earlier run must not be read as this one's
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dpa-verify-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\naddopts =\n", encoding="utf-8")  # the run directory's pytest config stays out
        code = int(pytest.main(pytest_args(values, list(ctx.args), ini, modules)))
    seconds = time.monotonic() - started
    if code == pytest.ExitCode.USAGE_ERROR:
        sys.exit(2)
    summary = _summary(report_json)
    violations = summary.get("violations") if summary else None
    verdict = "PASS" if code == 0 and violations == 0 else "FAIL"
    if summary:
        click.echo(
            f"dpa-mock verify: {verdict} — {violations} violation(s), {summary['leniencies']} leniency(ies)"
            f"{' (--strict: fatal)' if summary.get('strict') else ''}, {summary['observations']} "
            f"observation(s); {summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} "
            f"skipped in {seconds:.1f} s (seed {summary.get('seed')})"
        )
    else:
        click.echo(f"dpa-mock verify: FAIL — the kit did not finish (pytest exit status {code}), no result written")
    click.echo(f"report: {report}  (JSON: {report_json}; JUnit: {values.get('junitxml') or DEFAULT_JUNIT})")
    if write_profile:
        _write_profile(report_json, Path(write_profile), str(base_url or "the in-process emulator"))
    sys.exit(0 if verdict == "PASS" else 1)


def _write_profile(report_json: Path, target: Path, source: str) -> None:
    """The profile reproducing the run's observations (written even when the run failed: what was observed
    still holds; a run that wrote no result writes no profile)."""
    from contract_tests.support.profile_writer import render
    from contract_tests.support.redact import redact_url

    try:
        result = json.loads(report_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        click.echo(f"profile: not written ({report_json} was not written by the run)", err=True)
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(result, redact_url(source)), encoding="utf-8")
    except OSError as exc:
        click.echo(f"profile: cannot write {target}: {exc.strerror or exc}", err=True)
        sys.exit(2)
    click.echo(f"profile: {target}  (serve it: dpa-mock serve --profile {target})")


def _reachable(base_url: str, values: dict[str, Any]) -> None:
    """Exit 2 with the reason when the target does not answer at all (a typo in the URL, a closed port, TLS),
    rather than reporting every check as a violation."""
    import requests

    insecure = values.get("dpa_insecure") or os.environ.get("DPA_INSECURE", "").lower() in ("1", "true", "yes", "on")
    ca_bundle = values.get("dpa_ca_bundle") or os.environ.get("DPA_CA_BUNDLE")
    verify_tls: bool | str = False if insecure else (ca_bundle or True)
    try:
        requests.get(
            base_url.rstrip("/") + "/api/dp/auth/oauth/authorize", timeout=15, verify=verify_tls, allow_redirects=False
        )
    except requests.exceptions.SSLError as exc:
        raise click.UsageError(
            f"{base_url}: TLS failed ({exc.__class__.__name__}); give the CA with --ca-bundle (or --insecure)"
        ) from None
    except requests.RequestException as exc:
        raise click.UsageError(f"{base_url} does not answer ({exc.__class__.__name__}): check --base-url") from None


def _option(values: dict[str, Any], dest: str) -> Any:
    """An option's value: the command line, else its DPA_* variable."""
    if values.get(dest) not in (None, ()):
        return values[dest]
    env = next(e for d, _f, e, _k, _t in OPTIONS if d == dest)
    return os.environ.get(env) or None


def _credentials_accepted(base_url: str, values: dict[str, Any]) -> None:
    """Exit 2 when the target refuses the kit's own login with an error envelope (403 身份验证失败: a wrong
    --client-id or secret; 998 and others: e.g. an unknown --user-id): every check would fail for the operator's
    mistake and blame the target. Any other answer (no envelope, an undocumented code, success without a
    token) goes on: judging it is the kit's job."""
    import requests

    from dpa_client import PATHS

    insecure = values.get("dpa_insecure") or os.environ.get("DPA_INSECURE", "").lower() in ("1", "true", "yes", "on")
    verify_tls: bool | str = False if insecure else (_option(values, "dpa_ca_bundle") or True)
    client_id = str(_option(values, "dpa_client_id"))
    base = base_url.rstrip("/")

    def code_of(response: requests.Response) -> tuple[Any, Any, str]:
        try:
            body = response.json()
        except ValueError:
            return None, None, ""
        if not isinstance(body, dict):
            return None, None, ""
        return body.get("code"), body.get("data"), " ".join(str(body.get("message") or "").split())[:200]

    try:
        authorize = requests.get(
            base + PATHS["authorize"],
            params={
                "client_id": client_id,
                "response_type": "code",
                "scope": _option(values, "dpa_scope") or "default",
            },
            timeout=30,
            verify=verify_tls,
        )
        code, data, message = code_of(authorize)
        if code == 403:
            raise click.UsageError(
                f"the target refused --client-id {client_id!r} at authorize (code 403 {message!r}): check the "
                "application id"
            )
        if _refusal(code):
            raise click.UsageError(
                f"the target refused the kit's login at authorize (code {code} {message!r}): check --client-id "
                "and --scope; nothing can be checked without a token"
            )
        grant = data.get("code") if code == 200 and isinstance(data, dict) else None
        if not isinstance(grant, str):
            return
        body = {
            "code": grant,
            "client_id": client_id,
            "client_secret": str(_option(values, "dpa_client_secret")),
            "grant_type": "authorization_code",
        }
        if _option(values, "dpa_user_id") is not None:
            body["user_id"] = str(_option(values, "dpa_user_id"))
        code, _data, message = code_of(
            requests.post(base + PATHS["getToken"], json=body, timeout=30, verify=verify_tls)
        )
    except requests.RequestException:
        return  # answered a moment ago: let the kit report what happens now
    if code == 403:
        raise click.UsageError(
            f"the target refused the secret of --client-id {client_id!r} at token (code 403 {message!r}): check "
            "DPA_CLIENT_SECRET / --client-secret (and --user-id)"
        )
    if _refusal(code):
        raise click.UsageError(
            f"the target refused the kit's login at token (code {code} {message!r}): check the secret and "
            "--user-id; nothing can be checked without a token"
        )


def _refusal(code: Any) -> bool:
    """An error envelope's documented code (the kit judges anything else: a malformed answer is the target's)."""
    from dpa_client.document import ERROR_CODES

    return isinstance(code, int) and not isinstance(code, bool) and code in ERROR_CODES


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    summary = data.get("summary") if isinstance(data, dict) else None
    return summary if isinstance(summary, dict) else None


def _result(path: str) -> dict[str, Any]:
    """A `--report-json` result, or exit 2 naming the file and what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        _unreadable(path, exc.strerror or str(exc))
    except UnicodeDecodeError:
        _unreadable(path, "not UTF-8 text")
    except ValueError as exc:
        _unreadable(path, f"not JSON ({exc})")
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("observations"), list)
        or not all(isinstance(o, dict) and isinstance(o.get("topic"), str) for o in data["observations"])
    ):
        _unreadable(path, "not a `dpa-mock verify --report-json` result (no list of observations with topics)")
    return dict(data)


def _unreadable(path: str, reason: str) -> Any:
    click.echo(f"dpa-mock diff: {path}: {reason}", err=True)
    sys.exit(2)


def observation_values(result: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """topic -> its observed values, sorted (counts are how often, not what: they are not compared)."""
    values: dict[str, set[str]] = {}
    for item in result.get("observations") or []:
        values.setdefault(item["topic"], set()).add(str(item.get("value")))
    return {topic: tuple(sorted(found)) for topic, found in values.items()}


def compare(
    a: dict[str, Any], b: dict[str, Any], diagnostic: bool = False
) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]], list[str]]:
    """(differing, equal, not compared): rows of (topic, A's values, B's values); diagnostic topics are compared
    only when asked (they describe what the run generated, not the target)."""
    from contract_tests.support.verdicts import DIAGNOSTIC_TOPICS

    left, right = observation_values(a), observation_values(b)
    differ: list[tuple[str, str, str]] = []
    same: list[tuple[str, str, str]] = []
    skipped: list[str] = []
    for topic in sorted(set(left) | set(right)):
        if topic in DIAGNOSTIC_TOPICS and not diagnostic:
            skipped.append(topic)
            continue
        row = (topic, "; ".join(left.get(topic, ("(not observed)",))), "; ".join(right.get(topic, ("(not observed)",))))
        (same if left.get(topic) == right.get(topic) else differ).append(row)
    return differ, same, skipped


def _cell(text: str) -> str:
    """A table cell: one line, `|` escaped, control and bidi characters as \\uXXXX (values come from targets)."""
    text = " ".join(text.split()).replace("|", "\\|")
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _side(name: str, result: dict[str, Any]) -> str:
    s: dict[str, Any] = result["summary"] if isinstance(result.get("summary"), dict) else {}
    return (
        f"{name}: {_cell(str(s.get('target', '(target not recorded)')))} — {s.get('violations', '?')} violation(s), "
        f"{s.get('leniencies', '?')} leniency(ies), seed {s.get('seed', '?')}"
        + (f"; a partial run ({_cell(', '.join(map(str, s.get('modules') or [])))})" if s.get("partial") else "")
    )


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("a", metavar="A.json", type=click.Path(dir_okay=False))
@click.argument("b", metavar="B.json", type=click.Path(dir_okay=False))
@click.option(
    "--diagnostic",
    is_flag=True,
    help="Compare the diagnostic topics too (fuzzing.*: what the run generated, not the target).",
)
def diff(a: str, b: str, diagnostic: bool) -> None:
    """Two `dpa-mock verify --report-json` results side by side: every observation topic with each side's
    values, the differing ones first, and how many differ. Exit 0 when equal, 1 when they differ, 2 when a
    file cannot be read.

    E.g. staging against the emulator: how far is the emulator from staging (`--write-profile` closes it).
    """
    left, right = _result(a), _result(b)
    differ, same, skipped = compare(left, right, diagnostic)
    click.echo(f"A = {_side(a, left)}")
    click.echo(f"B = {_side(b, right)}")
    click.echo("")
    header = ["| | topic | A | B |", "|---|---|---|---|"]
    rows = [f"| ≠ | `{t}` | {_cell(x)} | {_cell(y)} |" for t, x, y in differ]
    rows += [f"| = | `{t}` | {_cell(x)} | {_cell(y)} |" for t, x, y in same]
    click.echo("\n".join(header + rows) if rows else "No observation topic on either side.")
    if skipped:
        click.echo(f"\nNot compared (diagnostic; --diagnostic compares them): {', '.join(skipped)}")
    total = len(differ) + len(same)
    click.echo(
        f"\n{len(differ)} of {total} topics differ" + (": " + ", ".join(t for t, _, _ in differ) if differ else "")
    )
    sys.exit(1 if differ else 0)
