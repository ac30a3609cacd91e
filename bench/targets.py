"""The targets that compare rows of one run (issues 5 and 14): shares of the ceilings, p99s, and the peers."""

from __future__ import annotations

import peers
from options import DEFAULT_CONFIG, Config
from report import CEILING_ROW, EXECUTE_ROW, LIST_ROW, LOGGED_LIST_ROW, OAUTH_ROW, PEER_ROW, RAW_ROW, Results

# Each peer against the emulator row doing the same kind of bookkeeping: WireMock's request journal and
# Prism's per-request log line against the emulator's journal and access log.
PEER_PAIRS = {"wiremock": LIST_ROW, "prism-silent": LIST_ROW, "prism": LOGGED_LIST_ROW}


def add_ratios_and_targets(results: Results, configs: list[Config]) -> None:
    """Each row's `vs ceiling` (against the ceiling on the same server with the same worker count, in this run),
    then the issue-5 targets that compare rows: the ceiling ratios, p99s and the peers."""
    for row in results.http:
        ceiling_row = results.row(CEILING_ROW, row.baseline or row.server)
        if ceiling_row and ceiling_row.rps and row is not ceiling_row and row.rps:
            row.vs_ceiling = f"{row.rps / ceiling_row.rps:.0%}"
    targets = []
    for config in configs:
        ceiling_row = results.row(CEILING_ROW, config.baseline)
        listed = results.row(LIST_ROW, config.label)
        if not (ceiling_row and listed and ceiling_row.rps and listed.rps):
            continue
        ratio = listed.rps / ceiling_row.rps
        where = "granian, same run" if config == DEFAULT_CONFIG else f"{config.label} vs ceiling {config.baseline}"
        targets.append(
            (f"list plans ≥ 50% of the ceiling ({where})", f"{ratio:.0%}", "pass" if ratio >= 0.5 else "**FAIL**")
        )
        suffix = "" if config == DEFAULT_CONFIG else f" ({config.label})"
        targets.append(
            (
                f"list plans p99 < 10 ms at 16 connections{suffix}",
                f"{listed.p99_ms:.1f} ms",
                "pass" if listed.p99_ms < 10 else "**FAIL**",
            )
        )
    # Issue 14: the writes go through the same pipeline's fast door as the reads, so they too are held to shares of
    # the bare-Flask ceiling of the same run.
    ceiling_row = results.row(CEILING_ROW, "granian")
    oauth, execute = results.row(OAUTH_ROW, "granian"), results.row(EXECUTE_ROW, "granian")
    if ceiling_row and ceiling_row.rps and oauth and oauth.rps:
        ratio = oauth.rps / ceiling_row.rps
        targets.append(
            (
                "authorize + token ≥ 75% of the ceiling per request (granian, same run)",
                f"{ratio:.0%}",
                "pass" if ratio >= 0.75 else "**FAIL**",
            )
        )
    if ceiling_row and ceiling_row.rps and execute and execute.rps:
        ratio = execute.rps / ceiling_row.rps
        p99 = execute.p99_ms if execute.p99_ms is not None else float("inf")
        verdict = "pass" if ratio >= 0.5 and p99 < 20 else "**FAIL**"
        targets.append(
            (
                "execute ≥ 50% of the ceiling, p99 < 20 ms at 16 connections (granian, same run)",
                f"{ratio:.0%}, p99 {p99:.1f} ms",
                verdict,
            )
        )
    raw, listed = results.row(RAW_ROW, "granian"), results.row(LIST_ROW, "granian")
    if raw and listed and raw.rps:
        targets.append(
            (
                "(not a target) list plans / raw WSGI ceiling, same server",
                f"{listed.rps / raw.rps:.0%}",
                "for scale: no framework at all, a constant body",
            )
        )
    for peer, pair in PEER_PAIRS.items():
        peer_row, ours = results.row(PEER_ROW, peer), results.row(pair, "granian")
        if peer_row and ours and peer_row.rps and ours.rps:
            targets.append(
                (
                    f"{pair} ahead of {peer} ({peers.describe(peer)}), same run",
                    f"{ours.rps:,.0f} vs {peer_row.rps:,.0f} req/s ({ours.rps / peer_row.rps:.0%})",
                    "pass" if ours.rps > peer_row.rps else "**FAIL**",
                )
            )
    results.targets[:0] = targets
