"""`--report FILE`: the session's findings as one Markdown file, and the same as JSON beside it."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from mock_server.proxy.model import VERDICTS

_TITLES = {"violation": "Violations", "leniency": "Leniencies", "observation": "Observations"}


def json_path(markdown: Path) -> Path:
    return markdown.with_suffix(".json") if markdown.suffix.lower() == ".md" else markdown.with_name(markdown.name + ".json")


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
    lines = ["# dpa-mock proxy report", "", f"- target: `{_cell(data['target'])}`", f"- written: {when}",
             f"- exchanges: {summary['api']} vendor calls, {summary['callbacks']} callbacks, {summary['other']} other",
             f"- findings: {summary['violations']} violations, {summary['leniencies']} leniencies, "
             f"{summary['observations']} observations"]
    total = summary["exchanges"]
    if summary.get("keptExchanges", total) < total:
        lines.append(f"- kept: the last {summary['keptExchanges']} exchanges and {summary['keptFindings']} findings "
                     "(older ones were dropped; see --max-exchanges); the counts above cover the whole session")
    if data.get("inFlight"):
        lines.append(f"- {data['inFlight']} exchange(s) were still waiting for an answer when the proxy stopped "
                     "(not in this report)")
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
            lines += [f"### {side} side", "", "| exchange | interface | check | finding |", "|---|---|---|---|"]
            lines += [f"| #{f['exchange']} `{_cell(f['request'])}` | {_cell(f['interface'])} | {_cell(f['check'])} | "
                      f"{_cell(f['message'])} |" for f in mine]
            lines += ["To reproduce (secrets shown as `***`: put your own back):", ""]
            shown: set[int] = set()
            for f in mine:
                if f["curl"] and f["exchange"] not in shown:  # one line per exchange, however many findings it has
                    shown.add(f["exchange"])
                    checks = ", ".join(dict.fromkeys(g["check"] for g in mine if g["exchange"] == f["exchange"]))
                    lines += [f"- #{f['exchange']} ({_cell(checks)}):", "", "  ```sh", f"  {_cell(f['curl'])}", "  ```"]
            lines.append("")
    sequences = data.get("callbackSequences") or {}
    if sequences:
        lines += ["## Callback status sequences", "", "| planInstanceId | statuses |", "|---|---|"]
        lines += [f"| {_cell(k)} | {' → '.join(map(_cell, v))} |" for k, v in sequences.items()]
        lines.append("")
    return "\n".join(lines)
