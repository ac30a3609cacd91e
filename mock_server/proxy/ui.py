"""`/__admin/ui`: one server-rendered page of the exchanges and their verdicts, refreshed every two seconds."""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

_STYLE = """
body{font:13px/1.4 system-ui,sans-serif;margin:1em 2em;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
.violation{background:#fde2e1}.leniency{background:#fff3cd}.observation{background:#e8f1fb}.ok{background:#fff}
code,pre{font:12px ui-monospace,monospace;white-space:pre-wrap;word-break:break-all;margin:0}
.tag{display:inline-block;padding:0 5px;border-radius:3px;font-weight:600}
.error{color:#a00;font-size:12px}
"""
# Reload every two seconds, but not while a curl line is open or the page is scrolled: a plain meta refresh
# closed the <details> and jumped to the top under the reader's eyes.
_REFRESH = (
    "<script>setInterval(function(){if(!document.querySelector('details[open]')&&window.scrollY<40)"
    "location.reload()},2000)</script>"
)


def page(app: Any, limit: int = 200) -> str:
    summary = app.store.summary()
    exchanges = app.store.exchanges(last=limit)[::-1]
    rows = []
    for ex in exchanges:
        findings = "".join(
            f"<div class='{escape(f['verdict'])}'><span class='tag'>{escape(f['verdict'])}</span> "
            f"{escape(f['side'])} · {escape(f['check'])}: {escape(f['message'])}</div>"
            for f in ex["findings"]
        )
        at = dt.datetime.fromtimestamp(ex["at"]).strftime("%H:%M:%S")
        where = f"{ex['method']} {ex['path']}"
        rows.append(
            f"<tr class='{escape(ex['verdict'])}'><td>#{ex['id']}</td><td>{at}</td><td>{escape(ex['kind'])}"
            f"{' ' + escape(ex['interface']) if ex['interface'] else ''}</td><td><code>{escape(where)}</code></td>"
            f"<td>{ex['status'] or ''}{_error(ex['error'])}</td><td>{escape(ex['verdict'])}</td><td>{findings}"
            f"{'<details><summary>curl</summary><pre>' + escape(ex['curl']) + '</pre></details>' if ex['curl'] else ''}"
            f"</td></tr>"
        )
    counts = ", ".join(f"{summary[k]} {k}" for k in ("api", "callbacks", "violations", "leniencies", "observations"))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{_REFRESH}"
        f"<title>dpa-mock proxy</title><style>{_STYLE}</style></head><body>"
        f"<h1>dpa-mock proxy → {escape(app.secrets.url(app.config.target))}</h1>"
        f"<p>{escape(counts)} · JSON: <a href='/__admin/exchanges'>exchanges</a>, "
        f"<a href='/__admin/findings'>findings</a></p>"
        f"<table><tr><th>#</th><th>time</th><th>kind</th><th>request</th><th>answer</th><th>verdict</th>"
        f"<th>findings</th></tr>{''.join(rows) or '<tr><td colspan=7>no exchanges yet</td></tr>'}</table>"
        f"</body></html>"
    )


def _error(error: str) -> str:
    """Why there is no answer (or the proxy's own): unreachable, timed out, busy."""
    return f"<div class='error'>{escape(error[:300])}</div>" if error else ""
