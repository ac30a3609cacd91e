"""The emulator profile that reproduces what the kit observed on a target: observation topics -> settings.

One table (`RULES`) maps the stable observation topics (contract_tests.support.verdicts.TOPICS) to the emulator's
profile settings (docs/profiles.md). Each rule reads the observed values of its topics and returns the setting's
value, or keeps the default with the reason (not observed, observed with a value no setting can reproduce, or
with conflicting values) — the written YAML says which, in a comment on the key.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from mock_server.settings import ALL_STATUSES, ERROR_CODES, TOKEN_CLAIMS, Settings

# Observed values per topic: value -> count (a topic may be observed with several values).
Observed = Mapping[str, Mapping[str, int]]

# Topics the kit observes that no profile setting reproduces: a written profile names them in its header.
UNREPRODUCIBLE_TOPICS = (
    "envelope.content-type",
    "callback.content-type",
    "execute.path-body-mismatch",
    "oauth.token-format",
    "plans.extra-fields",
    "plans.step-nums",
    "request.null-optional",
    "scene.instance-id-format",
    "scene.status",
    "scene.model-id",
    "listPlans.empty",
    "oauth.token-revoked-by-new-login",
    "run.wait-inconclusive",
    "out-params.unfinished-run",
    "envelope.charset",
    "callback.order",
    "callback.content-encoding",
    "scene.single-fires",
)
HTTP_CODES = (400, 403, 404, 500, 503, 997, 998, 999)


@dataclass(frozen=True)
class Choice:
    """A rule's answer: `value` is written when `kept` is None; otherwise the default stays and `kept` says why."""

    value: Any = None
    kept: str | None = None
    note: str | None = None  # a comment on a written value (e.g. how a range was turned into one number)


def kept(reason: str) -> Choice:
    return Choice(kept=reason)


def default(name: str) -> Any:
    return getattr(Settings(), name)


def _single(observed: Observed, topic: str) -> str | Choice:
    """The one value of `topic`, or the Choice that keeps the default (not observed, or several values)."""
    values = observed.get(topic) or {}
    if not values:
        return kept(f"not observed ({topic})")
    if len(values) > 1:
        return kept(f"{topic} observed with conflicting values: {_listing(values)}")
    return next(iter(values))


def _listing(values: Mapping[str, int]) -> str:
    return ", ".join(f"{v} ({n}x)" for v, n in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])))


def _code(topic: str, allowed: Sequence[int] = ERROR_CODES) -> Callable[[Observed], Choice]:
    def rule(observed: Observed) -> Choice:
        value = _single(observed, topic)
        if isinstance(value, Choice):
            return value
        if value.isdigit() and int(value) in allowed:
            return Choice(int(value))
        return kept(f"{topic} observed as {value!r}: no setting reproduces it (a documented error code is needed)")

    return rule


def _validation_code(observed: Observed) -> Choice:
    """A request refused for its token before its body is checked shows the bad-token code under this topic
    too (the emulator's own run observes 400 and 403): those refusals are left out when other codes remain."""
    values = dict(observed.get("validation.code") or {})
    bad_token = observed.get("oauth.bad-token.code") or {}
    if len(values) > 1 and len(bad_token) == 1:
        values.pop(next(iter(bad_token)), None)
    return _code("validation.code")({"validation.code": values})


def _status(code: int) -> int:
    return code if code < 600 else 200


def _http_status(observed: Observed) -> tuple[Choice, Choice]:
    """`http_status` and `http_status_by_code` from the statuses seen carrying each business code."""
    seen: dict[int, int] = {}
    problems: list[str] = []
    for code in HTTP_CODES:
        topic = f"http-status.code-{code}"
        value = _single(observed, topic)
        if isinstance(value, Choice):
            if observed.get(topic) or {}:
                problems.append(value.kept or topic)
            continue
        if not value.isdigit() or not 100 <= int(value) <= 599:
            problems.append(f"{topic} observed as {value!r}: not an HTTP status a setting can send (100-599)")
            continue
        seen[code] = int(value)
    if not seen:
        reason = "; ".join(problems) or "not observed (http-status.code-N)"
        return kept(reason), kept(reason)
    mode = "always200" if all(s == 200 for s in seen.values()) else "mirror"
    note = f"observed for codes {', '.join(map(str, sorted(seen)))}"
    others = [
        v
        for t in ("unknown-path.http-status", "wrong-method.http-status")
        if isinstance(v := _single(observed, t), str) and v.isdigit() and v != "200"
    ]
    if mode == "always200" and others:
        # always200 also sends unknown paths and wrong methods as 200 (docs/profiles.md): 200 for every
        # business code, with those statuses kept, is mirror with every error code mapped to 200.
        mode = "mirror"
        note += f"; mirror with every error code as 200, so unknown paths and wrong methods keep {', '.join(others)}"
        seen = {**dict.fromkeys(ERROR_CODES, 200), **seen}
    expected = (lambda c: 200) if mode == "always200" else _status
    overrides = {c: s for c, s in sorted(seen.items()) if s != expected(c)}
    if problems:
        note += "; kept as the mode says: " + "; ".join(problems)
    return Choice(mode, note=note), Choice(overrides, note=note if overrides else None)


def _http_status_of(
    topic: str, code_setting: str, setting_default_follows: bool
) -> Callable[[Observed, dict[str, Any]], Choice]:
    """An HTTP status setting where 0 means "as http_status gives for the code": written 0 when that matches."""

    def rule(observed: Observed, chosen: dict[str, Any]) -> Choice:
        value = _single(observed, topic)
        if isinstance(value, Choice):
            return value
        if not value.isdigit() or not 100 <= int(value) <= 599:
            return kept(f"{topic} observed as {value!r}: not an HTTP status a setting can send")
        code = chosen.get(code_setting, default(code_setting))
        mode = chosen.get("http_status", default("http_status"))
        by_code = chosen.get("http_status_by_code", {})
        follows = by_code.get(code, 200 if mode == "always200" else _status(code))
        if setting_default_follows and int(value) == follows:
            return Choice(0, note=f"observed {value}: what http_status gives for code {code}")
        return Choice(int(value))

    return rule


def _choice(topic: str, mapping: Mapping[str, Any]) -> Callable[[Observed], Choice]:
    def rule(observed: Observed) -> Choice:
        value = _single(observed, topic)
        if isinstance(value, Choice):
            return value
        if value in mapping:
            return Choice(mapping[value])
        return kept(f"{topic} observed as {value!r}: no setting reproduces it")

    return rule


def _message(topic: str) -> Callable[[Observed], Choice]:
    def rule(observed: Observed) -> Choice:
        value = _single(observed, topic)
        if isinstance(value, Choice):
            return value
        try:
            text = ast.literal_eval(value)  # the kit reports messages as repr()
        except (ValueError, SyntaxError):
            return kept(f"{topic} observed as {value!r}: not a quoted message")
        return Choice(str(text)) if isinstance(text, str) else kept(f"{topic}: message is not a string ({value})")

    return rule


def _callback_statuses(observed: Observed) -> Choice:
    """DEFAULT from callback.default-sent (or its absence from every observed sequence); RUNNING when no observed
    run called it back. PENDING, SUCCESS and FAIL are kept: a run that never reached one shows nothing of it."""
    sent = observed.get("callback.default-sent") or {}
    sequences = [s.split(" -> ") for s in (observed.get("callback.statuses") or {})]
    if not sent and not sequences:
        return kept("not observed (callback.default-sent, callback.statuses: no callbacks)")
    if len(sent) > 1:
        return kept(f"callback.default-sent observed with conflicting values: {_listing(sent)}")
    statuses = list(ALL_STATUSES)
    if "no" in sent or (not sent and not any("DEFAULT" in s for s in sequences)):
        statuses.remove("DEFAULT")
    if sequences and not any("RUNNING" in s for s in sequences):
        statuses.remove("RUNNING")
    return Choice(statuses)


def _retries(observed: Observed) -> Choice:
    value = _single(observed, "callback.attempts")
    if isinstance(value, Choice):
        return value
    if value.isdigit() and int(value) >= 1:
        return Choice(int(value) - 1, note=f"observed {value} attempts of a never-acknowledged status")
    return kept(f"callback.attempts observed as {value!r}")


def _backoff(observed: Observed) -> Choice:
    value = _single(observed, "callback.backoff")
    if isinstance(value, Choice):
        return value
    try:
        gaps = [float(g) for g in value.removesuffix(" s").split(",")]
    except ValueError:
        return kept(f"callback.backoff observed as {value!r}")
    if any(g < 0 for g in gaps):
        return kept(f"callback.backoff observed as {value!r}: negative gaps")
    return Choice([int(g) if g.is_integer() else g for g in gaps], note=f"observed {value}")


def _nice(seconds: float) -> int:
    """A lifetime measured to the second (exp minus a clock read) snapped to the whole minute it is within 2 s of."""
    minute = round(seconds / 60) * 60
    return int(minute) if minute and abs(seconds - minute) <= 2 else round(seconds)


def _token_ttl(observed: Observed) -> Choice:
    value = _single(observed, "oauth.token-lifetime")
    if isinstance(value, Choice):
        return value
    try:
        seconds = float(value)
    except ValueError:
        return kept(f"oauth.token-lifetime observed as {value!r}")
    if seconds <= 0:
        return kept(f"oauth.token-lifetime observed as {value!r}: not a lifetime")
    return Choice(_nice(seconds), note=f"observed {value} s")


_RANGE = re.compile(r"between (\d+) and (\d+) s")
_OVER = re.compile(r"over (\d+) s")


def _code_ttl(observed: Observed) -> Choice:
    """The kit brackets a code's lifetime between two ages: any value inside reproduces the observation, so the
    default when it lies inside, else the largest whole minute inside, else the midpoint."""
    value = _single(observed, "oauth.code-lifetime")
    if isinstance(value, Choice):
        return value
    match, over = _RANGE.fullmatch(value), _OVER.fullmatch(value)
    if match:
        low, high = int(match.group(1)), int(match.group(2))
    elif over:
        low, high = int(over.group(1)), None
    else:
        return kept(f"oauth.code-lifetime observed as {value!r}")
    current = default("code_ttl")
    if low < current and (high is None or current < high):
        return Choice(int(current), note=f"observed {value}: the default lies inside")
    if high is None:
        return Choice(low * 2, note=f"observed {value}: twice the longest age tried")
    minute = (high - 1) // 60 * 60
    chosen = minute if low < minute < high else (low + high) // 2
    return Choice(chosen, note=f"observed {value}: any value inside reproduces it")


def _code_length(observed: Observed) -> Choice:
    value = _single(observed, "oauth.code-length")
    if isinstance(value, Choice):
        return value
    if value.isdigit() and 8 <= int(value) <= 256:
        return Choice(int(value))
    return kept(f"oauth.code-length observed as {value!r}: the setting takes 8-256")


def _code_alphabet(observed: Observed) -> Choice:
    """Codes of A-Z0-9 seen beside codes with `_` or `-` are a sample of A-Z0-9_-, not a conflict."""
    values = dict(observed.get("oauth.code-alphabet") or {})
    if set(values) == {"A-Z0-9", "A-Z0-9_-"}:
        return Choice("A-Z0-9_-", note="some codes had no _ or -: a sample of A-Z0-9_-")
    return _choice("oauth.code-alphabet", {"A-Z0-9": "A-Z0-9", "A-Z0-9_-": "A-Z0-9_-"})(observed)


def _token_claims(observed: Observed) -> Choice:
    value = _single(observed, "oauth.token-claims")
    if isinstance(value, Choice):
        return value
    claims = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in claims if c not in TOKEN_CLAIMS]
    if unknown:
        return kept(f"oauth.token-claims observed as {value!r}: the emulator cannot issue {', '.join(unknown)}")
    return Choice(claims)


def _token_type(observed: Observed) -> Choice:
    """Bearer in the target's casing; anything else breaks the document's promise: the emulator keeps Bearer."""
    value = _single(observed, "oauth.token-type")
    if isinstance(value, Choice):
        return value
    if value.lower() != "bearer":
        return kept(f"oauth.token-type observed as {value!r}: not Bearer in any casing (a violation, not a choice)")
    return Choice(value)


@dataclass(frozen=True)
class Rule:
    setting: str
    topics: tuple[str, ...]
    read: Callable[..., Choice]
    needs_chosen: bool = False  # the rule reads settings chosen before it (HTTP statuses follow http_status)


# The mapping, in the order of docs/profiles.md's table. http_status and http_status_by_code come from one reading.
RULES: tuple[Rule, ...] = (
    Rule("http_status", tuple(f"http-status.code-{c}" for c in HTTP_CODES), lambda o: _http_status(o)[0]),
    Rule("http_status_by_code", tuple(f"http-status.code-{c}" for c in HTTP_CODES), lambda o: _http_status(o)[1]),
    Rule("unknown_plan_code", ("unknown-plan.code",), _code("unknown-plan.code")),
    Rule("unknown_instance_code", ("unknown-instance.code",), _code("unknown-instance.code")),
    Rule("unknown_path_code", ("unknown-path.code",), _code("unknown-path.code")),
    Rule(
        "unknown_path_http_status",
        ("unknown-path.http-status",),
        _http_status_of("unknown-path.http-status", "unknown_path_code", True),
        needs_chosen=True,
    ),
    Rule("wrong_method_code", ("wrong-method.code",), _code("wrong-method.code", (*ERROR_CODES, 405))),
    Rule(
        "wrong_method_http_status",
        ("wrong-method.http-status",),
        _http_status_of("wrong-method.http-status", "wrong_method_code", False),
        needs_chosen=True,
    ),
    Rule(
        "wrong_method_allow",
        ("wrong-method.allow-header",),
        _choice("wrong-method.allow-header", {"present": True, "absent": False}),
    ),
    Rule("validation_code", ("validation.code",), _validation_code),
    Rule("bad_token_code", ("oauth.bad-token.code",), _code("oauth.bad-token.code")),
    Rule("code_reuse_code", ("oauth.code-reuse.code",), _code("oauth.code-reuse.code")),
    Rule("error_data", ("error.data",), _choice("error.data", {"null": "null", "absent": "absent"})),
    Rule("success_message", ("success-message.process",), _message("success-message.process")),
    Rule("oauth_success_message", ("success-message.oauth",), _message("success-message.oauth")),
    Rule(
        "single_slash_paths",
        ("paths.single-slash",),
        _choice("paths.single-slash", {"served": True, "not served": False}),
    ),
    Rule(
        "execute_body_plan_id",
        ("execute.body-plan-id",),
        _choice("execute.body-plan-id", {"required": "required", "path only": "path-only"}),
    ),
    Rule("callback_statuses", ("callback.default-sent", "callback.statuses"), _callback_statuses),
    Rule("callback_retries", ("callback.attempts",), _retries),
    Rule("callback_backoff", ("callback.backoff",), _backoff),
    Rule(
        "callback_after_give_up",
        ("callback.after-give-up",),
        _choice("callback.after-give-up", {"later statuses sent": True, "nothing more sent": False}),
    ),
    Rule("code_ttl", ("oauth.code-lifetime",), _code_ttl),
    Rule("token_ttl", ("oauth.token-lifetime",), _token_ttl),
    Rule("code_length", ("oauth.code-length",), _code_length),
    Rule("code_alphabet", ("oauth.code-alphabet",), _code_alphabet),
    Rule("token_claims", ("oauth.token-claims",), _token_claims),
    Rule("token_type", ("oauth.token-type",), _token_type),
    Rule(
        "plan_instance_id_format",
        ("execute.plan-instance-id-format",),
        _choice(
            "execute.plan-instance-id-format",
            {"in + 13 digits": "in-millis", "19 digits": "digits", "other (36 chars)": "uuid"},
        ),
    ),
)
# Settings no topic shows (values are not observed, only claim names): always the default, said so.
UNOBSERVABLE = {
    "issuer": "the kit observes claim names, not the issuer's value",
    "token_audience": "the kit observes claim names, not the audience's value",
}


def observed_from_report(report: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """topic -> {value: count} from a `--report-json` result."""
    out: dict[str, dict[str, int]] = {}
    for item in report.get("observations") or []:
        if isinstance(item, dict) and isinstance(item.get("topic"), str):
            count = item["count"] if isinstance(item.get("count"), int) else 1
            out.setdefault(item["topic"], {})[str(item.get("value"))] = count
    return out


def choose(observed: Observed) -> dict[str, Choice]:
    """Every rule's Choice, in RULES order."""
    chosen: dict[str, Any] = {}
    choices: dict[str, Choice] = {}
    for rule in RULES:
        choice = rule.read(observed, chosen) if rule.needs_chosen else rule.read(observed)
        choices[rule.setting] = choice
        if choice.kept is None:
            chosen[rule.setting] = choice.value
    _check_claims(choices)
    return choices


def _check_claims(choices: dict[str, Choice]) -> None:
    """A claim set the emulator refuses (no exp, no user, no app) keeps the default: the profile must load."""
    claims = choices["token_claims"]
    if claims.kept is not None:
        return
    names = set(claims.value)
    if "exp" not in names or not names & {"sub", "user_id"} or not ({"client_id", "aud"} & names):
        choices["token_claims"] = kept(
            f"oauth.token-claims observed as {', '.join(claims.value)}: the emulator "
            "needs exp, sub or user_id, and client_id or aud"
        )


def _yaml_value(value: Any) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 600, not 600.0
    if isinstance(value, str) and not value.isprintable():
        return json.dumps(value)  # one line, escaped (a JSON string is a YAML double-quoted scalar)
    text = str(yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000)).strip()
    return text.removesuffix("\n...").strip()


def render(report: Mapping[str, Any], source: str = "the target") -> str:
    """The YAML profile text: one key per profile setting, each kept default with its reason in a comment."""
    observed = observed_from_report(report)
    choices = choose(observed)
    summary = report["summary"] if isinstance(report.get("summary"), dict) else {}
    lines = [
        "# dpa-mock profile written by `dpa-mock verify --write-profile` from what the contract kit observed on",
        f"# {_one_line(source)} (seed {summary.get('seed')}, {summary.get('observations')} observation(s)).",
        "# Serve it with `dpa-mock serve --profile THIS_FILE`; docs/profiles.md lists the settings.",
        "# A key marked `default:` was not observed (or not reproducibly): it keeps the emulator's default.",
    ]
    if summary.get("partial"):
        lines.append(f"# A partial run: only {_one_line(', '.join(map(str, summary.get('modules') or [])))}.")
    other = [(t, v) for t in UNREPRODUCIBLE_TOPICS for v in sorted(observed.get(t) or {})]
    if other:
        lines.append("# Observed, but no setting reproduces it (the emulator keeps its own behaviour):")
        lines += [f"#   {t}: {_one_line(v)}" for t, v in other]
    lines.append("")
    for setting, choice in choices.items():
        if choice.kept is None:
            comment = f"  # {choice.note}" if choice.note else ""
            lines.append(f"{setting}: {_yaml_value(choice.value)}{comment}")
        else:
            lines.append(f"{setting}: {_yaml_value(default(setting))}  # default: {_one_line(choice.kept)}")
    for setting, reason in UNOBSERVABLE.items():
        lines.append(f"{setting}: {_yaml_value(default(setting))}  # default: {reason}")
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """A comment's text: one line, control and bidi characters escaped (observed values come from the target)."""
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in " ".join(text.split()))
