"""`--report FILE`: the session's findings as one Markdown file, and the same as JSON beside it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from mock_server.proxy.model import VERDICTS

_TITLES = {"violation": "Violations", "leniency": "Leniencies", "observation": "Observations"}


def json_path(markdown: Path) -> Path:
    return (
        markdown.with_suffix(".json")
        if markdown.suffix.lower() == ".md"
        else markdown.with_name(markdown.name + ".json")
    )


def write_report(path: Path | str, data: dict[str, Any]) -> tuple[Path, Path]:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    json_file = json_path(path)
    json_file.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    path.write_text(markdown(data), encoding="utf-8")
    return path, json_file


def _cell(text: Any) -> str:
    # Control characters (fuzzed inputs) would make the file "binary" to grep; pipes would break the table.
    return "".join(ch if ch >= " " or ch == "\t" else f"\\x{ord(ch):02x}" for ch in str(text)).replace("|", "\\|")


def markdown(data: dict[str, Any]) -> str:
    summary = data["summary"]
    when = dt.datetime.fromtimestamp(data["finished"]).isoformat(timespec="seconds")
    lines = [
        "# dpa-mock proxy report",
        "",
        f"- target: `{_cell(data['target'])}`",
        f"- written: {when}",
        f"- exchanges: {summary['api']} vendor calls, {summary['callbacks']} callbacks, {summary['other']} other",
        f"- findings: {summary['violations']} violations, {summary['leniencies']} leniencies, "
        f"{summary['observations']} observations",
    ]
    total = summary["exchanges"]
    if summary.get("keptExchanges", total) < total:
        lines.append(
            f"- kept: the last {summary['keptExchanges']} exchanges and {summary['keptFindings']} findings "
            "(older ones were dropped; see --max-exchanges); the counts above cover the whole session"
        )
    if data.get("inFlight"):
        lines.append(
            f"- {data['inFlight']} exchange(s) were still waiting for an answer when the proxy stopped "
            "(not in this report)"
        )
    lines.append("")
    for verdict in VERDICTS:
        found = [f for f in data["findings"] if f["verdict"] == verdict]
        lines += [f"## {_TITLES[verdict]} ({len(found)})", ""]
        if not found:
            lines += ["None.", ""]
            continue
        for side in ("server", "client"):
            mine = [f for f in found if f["side"] == side]
            if not mine:
                continue
            lines += _side_section(side, mine)
    sequences = data.get("callbackSequences") or {}
    if sequences:
        lines += ["## Callback status sequences", "", "| planInstanceId | statuses |", "|---|---|"]
        lines += [f"| {_cell(k)} | {' → '.join(map(_cell, v))} |" for k, v in sequences.items()]
        lines.append("")
    return "\n".join(lines)


def _side_section(side: str, found: list[dict[str, Any]]) -> list[str]:
    """A table of one side's findings, the same finding on many exchanges as one row, then one curl line per row.

    Grouping keeps a report readable when a receiver answered `success` to fifty callbacks; the JSON beside it
    still lists every finding.
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for f in found:
        groups.setdefault((f["interface"], f["check"], f["message"]), []).append(f)
    lines = [f"### {side} side", "", "| exchange | interface | check | finding |", "|---|---|---|---|"]
    for (interface, check, message), same in groups.items():
        first = same[0]
        others = ", ".join(f"#{g['exchange']}" for g in same[1:6]) + (", …" if len(same) > 6 else "")
        more = f" and {len(same) - 1} more ({others})" if len(same) > 1 else ""
        lines.append(
            f"| #{first['exchange']} `{_cell(first['request'])}`{more} | {_cell(interface)} | {_cell(check)} "
            f"| {_cell(message)} |"
        )
    lines += ["", "To reproduce (secrets are shown as `***`: put your own back):", ""]
    shown: set[int] = set()
    # the group's first exchange with its curl line (one dropped by --max-exchanges has none left)
    for f in (next((g for g in same if g["curl"]), same[0]) for same in groups.values()):
        if f["curl"] and f["exchange"] not in shown:  # one line per exchange, however many findings it has
            shown.add(f["exchange"])
            checks = ", ".join(dict.fromkeys(g["check"] for g in found if g["exchange"] == f["exchange"]))
            lines += [f"- #{f['exchange']} ({_cell(checks)}):", "", "  ```sh", f"  {_cell(f['curl'])}", "  ```"]
    lines.append("")
    return lines
