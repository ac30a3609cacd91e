"""The kit's options as data (flag, DPA_* variable, kind, help): read by pytest and by `dpa-mock verify`,
without importing pytest (the CLI must start without the [kit] extra)."""

from __future__ import annotations

from pathlib import Path

# Demo credentials of the bundled fixtures (fixtures/apps.yaml): used only when the target is the emulator.
POC_CLIENT = ("JhYhK/XcFKuVlpVijwLCkw==", "EZOXzdyqbGt1CpxtHrt5te35zS9iE6jfcgyvpPpNmPU=")
DOC_CLIENT = ("CfjisL9AeNc066tkxSiKig==", "xB5hQnmlNnc+iab3RODs6yHlcHqFHAM2e4PawddAxtI=")
DEFAULT_REPORT = "reports/contract-report.md"
DEFAULT_JUNIT = "reports/contract-junit.xml"
DEFAULT_MAX_SCENES = 10  # live targets: scenes cannot be deleted through the vendor API

# option dest -> (flag, environment variable, kind, help)
OPTIONS: list[tuple[str, str, str, str, str]] = [
    (
        "dpa_base_url",
        "--base-url",
        "DPA_BASE_URL",
        "str",
        "Base URL of a live target (e.g. https://staging:29041). Without it the emulator runs in-process.",
    ),
    ("dpa_client_id", "--client-id", "DPA_CLIENT_ID", "str", "Application id (应用ID) the kit logs in with."),
    (
        "dpa_client_secret",
        "--client-secret",
        "DPA_CLIENT_SECRET",
        "str",
        "Application secret; prefer the environment variable so it stays out of shell history.",
    ),
    ("dpa_user_id", "--user-id", "DPA_USER_ID", "str", "user_id sent to the token call (optional)."),
    ("dpa_scope", "--scope", "DPA_SCOPE", "str", "Scope asked for at authorize: default (default) or all."),
    (
        "dpa_other_client_id",
        "--other-client-id",
        "DPA_OTHER_CLIENT_ID",
        "str",
        "A second application, to check that a code is bound to its client (emulator: its demo app).",
    ),
    (
        "dpa_other_client_secret",
        "--other-client-secret",
        "DPA_OTHER_CLIENT_SECRET",
        "str",
        "Secret of the second application.",
    ),
    ("dpa_ca_bundle", "--ca-bundle", "DPA_CA_BUNDLE", "str", "CA bundle (PEM) to verify the target's TLS certificate."),
    ("dpa_insecure", "--insecure", "DPA_INSECURE", "bool", "Do not verify the target's TLS certificate."),
    (
        "dpa_no_admin",
        "--no-admin",
        "DPA_NO_ADMIN",
        "bool",
        "Never use the emulator's /__admin API, even if the target answers it.",
    ),
    (
        "dpa_allow_writes",
        "--allow-writes",
        "DPA_ALLOW_WRITES",
        "bool",
        "Live target: allow executions (interface 5), only of the plans named with --plan-id.",
    ),
    (
        "dpa_plan_ids",
        "--plan-id",
        "DPA_PLAN_IDS",
        "list",
        "A plan the kit may execute (repeatable; env: comma-separated).",
    ),
    (
        "dpa_allow_scenes",
        "--allow-scenes",
        "DPA_ALLOW_SCENES",
        "bool",
        "Live target: allow saveTimingParam (interface 4), single strategy only; scenes cannot be deleted.",
    ),
    ("dpa_max_runs", "--max-runs", "DPA_MAX_RUNS", "int", "Cap on plan runs the kit may start in this session."),
    (
        "dpa_max_scenes",
        "--max-scenes",
        "DPA_MAX_SCENES",
        "int",
        f"Cap on scenes the kit may create in this session (live target default {DEFAULT_MAX_SCENES}).",
    ),
    (
        "dpa_callback_listen",
        "--callback-listen",
        "DPA_CALLBACK_LISTEN",
        "str",
        "HOST:PORT where the kit's callback receiver listens (port 0: any free port).",
    ),
    (
        "dpa_callback_public_url",
        "--callback-public-url",
        "DPA_CALLBACK_PUBLIC_URL",
        "str",
        "callbackUrl the target is told (reaches the receiver); 'auto' = the listen address.",
    ),
    (
        "dpa_slow",
        "--slow",
        "DPA_SLOW",
        "bool",
        "Without /__admin time control, run expiry and schedule checks in real time.",
    ),
    (
        "dpa_wait_seconds",
        "--wait-seconds",
        "DPA_WAIT_SECONDS",
        "float",
        "Longest real-time wait for a run or a callback when time cannot be advanced (default 30).",
    ),
    ("dpa_report", "--report", "DPA_REPORT", "str", f"Markdown report path (default {DEFAULT_REPORT})."),
    (
        "dpa_report_json",
        "--report-json",
        "DPA_REPORT_JSON",
        "str",
        "Also write the result as JSON: summary, violations, leniencies, observations (topics: docs/contract-kit.md).",
    ),
    # pytest owns --strict; `dpa-mock verify --strict` passes this one.
    (
        "dpa_strict",
        "--dpa-strict",
        "DPA_STRICT",
        "bool",
        "Leniencies (the target accepts what the document forbids, or lacks an HTTP nicety) fail the run too.",
    ),
]

# Numeric options: (lowest, highest) allowed, inclusive; `lowest_open` excludes the lowest. A negative cap or a
# zero/NaN/infinite wait is a usage error (one line, exit 2), never a silent "no limit".
NUMBER_RANGES: dict[str, tuple[float, float, bool]] = {
    "dpa_max_runs": (0, 1_000_000, False),
    "dpa_max_scenes": (0, 1_000_000, False),
    "dpa_wait_seconds": (0, 86_400, True),
}


def number_problem(dest: str, raw: object) -> str | None:
    """Why `raw` is not an allowed value of the numeric option `dest` (None when it is, or is unset)."""
    import math

    if raw is None or dest not in NUMBER_RANGES:
        return None
    flag = next(f for d, f, _e, _k, _t in OPTIONS if d == dest)
    kind = next(k for d, _f, _e, k, _t in OPTIONS if d == dest)
    try:
        value = float(raw) if kind == "float" else int(str(raw).strip())
    except ValueError:
        return f"{flag} must be {'a number' if kind == 'float' else 'a whole number'}, not {raw!r}"
    low, high, low_open = NUMBER_RANGES[dest]
    if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
        low_text = f"more than {low:g}" if low_open else f"at least {low:g}"
        return f"{flag} must be {low_text} and at most {high:.0f}, not {raw!r}"
    return None


def kit_modules() -> list[str]:
    """The kit's check modules (`test_oauth.py`, …): what `verify --only` picks from and the report counts."""
    return sorted(path.name for path in Path(__file__).parent.glob("test_*.py"))
