"""The kit's three verdicts (violation, leniency, observation), the class of every schemathesis check, and the
stable observation topics (other tools — emulator profiles, the proxy — read them from the JSON report)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    VIOLATION = "violation"  # breaks what an integrator following the document relies on: fails the run
    LENIENCY = "leniency"  # accepts what the document forbids, or an HTTP nicety is missing: fails with --strict
    OBSERVATION = "observation"  # the target's side of a documented ambiguity: reported only


@dataclass
class Finding:
    """One leniency (or, under --strict, a leniency that failed its test), with the request that shows it."""

    verdict: Verdict
    check: str
    detail: str
    test: str
    curl: str | None = None
    count: int = 1


class LeniencyFailure(AssertionError):
    """A leniency, raised only under --strict (otherwise it is recorded and the test goes on)."""


# Schemathesis' own checks: class and why (docs/contract-kit.md lists these). Names are schemathesis' own.
SCHEMATHESIS_CHECKS: dict[str, tuple[Verdict, str]] = {
    "not_a_server_error": (Verdict.VIOLATION, "a 5xx (other than the documented 503) is never a promise kept"),
    "response_schema_conformance": (
        Verdict.VIOLATION,
        "the contract states only the document's promises: envelope, fields, types",
    ),
    "status_code_conformance": (
        Verdict.OBSERVATION,
        "the document ties no HTTP status to a code (every operation has `default`)",
    ),
    "content_type_conformance": (Verdict.LENIENCY, "an HTTP nicety: the document never names a Content-Type"),
    "response_headers_conformance": (Verdict.LENIENCY, "the contract declares no response header"),
    "negative_data_rejection": (Verdict.LENIENCY, "accepting a request the document forbids harms no follower"),
    "positive_data_acceptance": (
        Verdict.VIOLATION,
        "only for success-path requests the document promises to accept (the kit's "
        "real client, code, plans and run); an observation for generated ids",
    ),
    "missing_required_header": (Verdict.VIOLATION, "a protected operation must refuse a request without a token"),
    "ignored_auth": (Verdict.VIOLATION, "a protected operation must refuse a missing or tampered token"),
    "unsupported_method": (Verdict.LENIENCY, "405 and its Allow header are HTTP niceties the document never asks"),
    "allow_header_conformance": (Verdict.LENIENCY, "an HTTP nicety"),
    "use_after_free": (Verdict.VIOLATION, "the API has no delete; kept for completeness"),
    "ensure_resource_availability": (
        Verdict.VIOLATION,
        "an instance id returned by executePlan must be queryable (接口 6)",
    ),
    "object_level_authorization": (Verdict.VIOLATION, "another user's objects must not be served"),
    "envelope_conformance": (
        Verdict.VIOLATION,
        "the kit's own: every answer is a {code, message, data} envelope "
        "with a documented int code, never a server error",
    ),
}

# Stable observation topics: the JSON report's `observations[].topic`. Values are short strings; a topic
# observed with several values (e.g. per operation) appears once per value with its count.
TOPICS: dict[str, str] = {
    "http-status.code-400": "HTTP status carrying business code 400",
    "http-status.code-403": "HTTP status carrying business code 403",
    "http-status.code-404": "HTTP status carrying business code 404",
    "http-status.code-500": "HTTP status carrying business code 500",
    "http-status.code-503": "HTTP status carrying business code 503",
    "http-status.code-997": "HTTP status carrying business code 997",
    "http-status.code-998": "HTTP status carrying business code 998",
    "http-status.code-999": "HTTP status carrying business code 999",
    "unknown-plan.code": "business code (or `HTTP n` without an envelope) answering an unknown processPlanId",
    "unknown-instance.code": "business code answering an unknown planInstanceId",
    "unknown-path.http-status": "HTTP status of an unknown path under /api/dpa",
    "unknown-path.code": "business code of an unknown path (`none` when the body is not an envelope)",
    "wrong-method.http-status": "HTTP status of a known path with another method",
    "wrong-method.code": "business code of a wrong method (`none` when the body is not an envelope)",
    "wrong-method.allow-header": "`present` or `absent`: the Allow header of a wrong-method answer",
    "validation.code": "business code refusing a request the document forbids (400 expected)",
    "oauth.code-reuse.code": "business code refusing an authorization code used twice",
    "oauth.code-length": "length of authorization codes",
    "oauth.code-alphabet": "characters of five authorization codes together: `A-Z0-9`, `A-Z0-9_-`, or `other`",
    "oauth.code-lifetime": "how long an unused authorization code stays valid (`between a and b s`)",
    "oauth.token-format": "`JWT with exp` or `opaque`",
    "oauth.token-lifetime": "access token lifetime in seconds: exp minus iat/orig_iat (else exp minus the target's "
    "now, rounded up)",
    "oauth.token-claims": "comma-separated claim names of the JWT payload",
    "oauth.bad-token.code": "business code refusing a bad or missing token",
    "oauth.token-type": "token_type of the token answer, exactly as sent (RFC 6749: case-insensitive)",
    "oauth.token-revoked-by-new-login": "`yes` when a newer login revoked the kit's earlier token (code 403)",
    "run.wait-inconclusive": "what a run was still doing when the kit's wait ended (`--wait-seconds`, no /__admin)",
    "out-params.unfinished-run": "business code answering queryPlanRunOutParam of a run not yet finished",
    "envelope.charset": "declared charset of JSON bodies that are not UTF-8 (decoded by it to judge the content)",
    "success-message.oauth": "success `message` of authorize and token (repr)",
    "success-message.process": "success `message` of the process-plan operations (repr)",
    "envelope.content-type": "Content-Type of envelopes when it is not application/json",
    "error.data": "`data` of error envelopes: `null`, `absent` or `filled`",
    "paths.single-slash": "whether the single-slash form of the `//` paths is served",
    "execute.plan-instance-id-format": "shape of planInstanceId (`in + 13 digits`, or `other`)",
    "execute.body-plan-id": "`required` or `path only` (a body without processPlanId accepted)",
    "execute.path-body-mismatch": "`rejected`, or `accepted` when path and body name different plans",
    "callback.statuses": "statuses called back for one run, in order",
    "callback.default-sent": "`yes` or `no`: whether DEFAULT is called back",
    "callback.attempts": "attempts for a never-acknowledged status (3 or 4)",
    "callback.backoff": "seconds between attempts of one never-acknowledged status (target clock under "
    "/__admin, else real arrival times rounded to 0.1 s)",
    "callback.after-give-up": "whether later statuses are sent after giving up on one",
    "callback.content-type": "Content-Type of callbacks when it is not application/json",
    "callback.content-encoding": "Content-Encoding of callbacks when not identity (the kit decodes gzip/deflate)",
    "callback.order": "`serial`, or `retries interleaved with later statuses` (a failed status retried after "
    "the instance's next status was sent)",
    "scene.instance-id-format": "shape of a saved scene's instanceId",
    "scene.status": "status of a newly saved scene",
    "scene.model-id": "modelId of a saved scene: `first workflow` or `other`",
    "scene.single-fires": "when a `single` scene fires: `at save` or `after the interval`",
    "plans.extra-fields": "fields of listPlans items beyond the document's nine",
    "plans.step-nums": "`workflows` when stepNums counts the plan's workflows, else `other`",
    "request.null-optional": "a JSON null for an optional field: `absent` or `rejected`",
    "fuzzing.codes": "envelope codes schemathesis got per operation (diagnostic)",
    "fuzzing.not-sent": "generated requests the safety options kept from the target",
    "fuzzing.max-runs": "executions by envelope fuzzing count against --max-runs (live target)",
    "listPlans.empty": "the user sees no plan",
}

# Topics that describe the run rather than the target (what Hypothesis generated, what the safety options kept
# back): `dpa-mock diff` lists them without comparing, the closed loop leaves them out, no profile setting
# reads them.
DIAGNOSTIC_TOPICS: tuple[str, ...] = ("fuzzing.codes", "fuzzing.not-sent", "fuzzing.max-runs")
