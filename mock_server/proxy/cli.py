"""The `dpa-mock proxy` command: serve the proxy on waitress (threads, so a callback relay never blocks the rest)."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

import click

from mock_server.proxy.forward import Destination, same_address, tls_context
from mock_server.stopping import serve_waitress, stops

# Exchanges in flight when the proxy is stopped get this long to finish (longer than serve's: they wait on a
# deployment over the network, and a session's last exchanges are worth a report).
GRACE = 5.0


@click.command()
@click.option(
    "--target",
    required=True,
    envvar="DPA_PROXY_TARGET",
    help="Base URL of the deployment to stand in front of, e.g. https://staging.example:29041.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=29042, show_default=True, help="Port to bind (0: any free port)."
)
@click.option(
    "--record",
    "record_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Write emulator fixtures (plans, workflows, run outputs) from the target's answers into DIR.",
)
@click.option(
    "--report",
    "report_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="On exit, write a Markdown report there (and the same as JSON beside it).",
)
@click.option(
    "--callback-public-url",
    default=None,
    help="The proxy's base URL as the target reaches it (callbacks are relayed through it); default http://HOST:PORT.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Verify the target's TLS certificate with this CA bundle.",
)
@click.option("--insecure", is_flag=True, help="Do not verify TLS certificates (the target's and receivers').")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds to wait for the target.")
@click.option(
    "--callback-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for your callback receiver.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=8),
    default=64,
    show_default=True,
    help="Server threads: half may wait on the target, the rest but two on callback receivers.",
)
@click.option(
    "--max-exchanges",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Exchanges kept for /__admin and the report (the oldest go first; findings: 4 times as many).",
)
@click.option("--quiet", is_flag=True, help="No log line per exchange.")
def proxy(
    target: str,
    host: str,
    port: int,
    record_dir: str | None,
    report_file: str | None,
    callback_public_url: str | None,
    ca_bundle: str | None,
    insecure: bool,
    timeout: float,
    callback_timeout: float,
    threads: int,
    max_exchanges: int,
    quiet: bool,
) -> None:
    """Stand between your service and a deployment: forward every exchange unchanged, callbacks included,
    judge each one by the document, optionally record the target's plans as fixtures."""
    from mock_server.proxy.app import ProxyApp, ProxyConfig
    from mock_server.proxy.record import Recorder, RecordingError
    from mock_server.proxy.report import write_report

    if ca_bundle and insecure:
        _fail("--ca-bundle and --insecure exclude each other")
    try:
        Destination.parse(target)
        if callback_public_url:
            Destination.parse(callback_public_url)
    except ValueError as exc:
        _fail(str(exc))
    if report_file:
        problem = _unwritable(Path(report_file))
        if problem:  # found now, not after a whole session whose report would then be lost
            _fail(f"--report {report_file}: {problem}")
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    stops.install()  # from here on SIGINT and SIGTERM stop, each recorded (see mock_server/stopping.py)
    try:
        server = _listen(host, port, threads)
        bound_port = int(server.effective_port)
        dest = Destination.parse(target)
        if same_address(dest.host, dest.port, host, bound_port):
            server.close()
            _fail(f"--target {target} is this proxy itself (it would forward every request to itself)")
        public = callback_public_url or f"http://{_public_host(host)}:{bound_port}"
        try:
            recorder = Recorder(record_dir) if record_dir else None
        except (RecordingError, OSError) as exc:
            server.close()
            _fail(str(exc))
        app = ProxyApp(
            ProxyConfig(
                target=target,
                public_url=public,
                timeout=timeout,
                callback_timeout=callback_timeout,
                tls=tls_context(ca_bundle, insecure),
                callback_tls=tls_context(None, insecure),
                threads=threads,
                max_exchanges=max_exchanges,
                listen=(host, bound_port),
            ),
            recorder,
        )
        server.application = app
    except KeyboardInterrupt:  # stopped while starting: nothing was served, there is nothing to report
        click.echo("dpa-mock proxy stopped", err=True)
        return
    click.echo(
        f"dpa-mock proxy on http://{host}:{bound_port} -> {app.secrets.url(target)} "
        f"(callbacks relayed via {public}; live view /__admin/ui)",
        err=True,
    )
    if not callback_public_url and _is_wildcard(host):
        click.echo(
            "dpa-mock proxy: warning: callbacks are relayed via a loopback address; give "
            "--callback-public-url with an address the target can reach",
            err=True,
        )
    if not _is_loopback(host):
        click.echo(
            f"dpa-mock proxy: note: /__admin/ui, /__admin/exchanges and /__admin/findings show this "
            f"session's traffic (secrets masked) to anyone who can reach {host}:{bound_port}",
            err=True,
        )
    try:
        # The first Ctrl-C or SIGTERM gives exchanges in flight GRACE seconds, their answers flushed; a
        # second one stops waiting. A stop is recorded before anything can swallow it (see StopSignals).
        serve_waitress(server, _say, grace=GRACE)
    except KeyboardInterrupt:
        pass  # a third signal, in the drain's last steps: it is over either way
    finally:
        # Nothing more interrupts the report now: it is what a stopped session leaves behind.
        stops.ignore()
        if report_file:
            data = app.report_data()
            try:
                md, js = write_report(Path(report_file), data)
            except OSError as exc:  # the directory went away or became read-only during the session
                fallback = Path(tempfile.gettempdir()) / f"dpa-mock-proxy-report-{os.getpid()}.md"
                md, js = write_report(fallback, data)
                click.echo(
                    f"dpa-mock proxy: cannot write {report_file} ({exc.strerror or exc}); report written to "
                    f"{md} and {js} instead",
                    err=True,
                )
            else:
                click.echo(f"dpa-mock proxy: report written to {md} and {js}", err=True)
            if data["inFlight"]:
                click.echo(
                    f"dpa-mock proxy: {data['inFlight']} exchange(s) were still waiting for an answer and are "
                    "not in the report",
                    err=True,
                )
        if recorder is not None:
            click.echo(f"dpa-mock proxy: recording in {recorder.path}", err=True)
    click.echo("dpa-mock proxy stopped", err=True)


def _listen(host: str, port: int, threads: int) -> Any:
    """The waitress server, listening (its application is set once built: it needs the bound port)."""
    import waitress.server

    try:
        # connection_limit: waitress' default of 100 lets 100 idle or stalled clients lock everyone out;
        # channel_timeout drops a connection silent that long (a stalled body included); poll() because select()
        # cannot watch descriptors above 1024.
        return waitress.server.create_server(
            _Lazy(),
            host=host,
            port=port,
            threads=threads,
            ident="dpa-mock-proxy",
            connection_limit=1000,
            channel_timeout=30,
            asyncore_use_poll=True,
            max_request_body_size=64 * 1024 * 1024,
        )
    except OSError as exc:
        _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}", code=1)


class _Lazy:
    """Placeholder application until the real one, which needs the bound port, is built."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("503 Service Unavailable", [("Content-Length", "0")])
        return [b""]


def _say(text: str) -> None:
    click.echo(f"dpa-mock proxy: {text}", err=True)


def _unwritable(report: Path) -> str | None:
    """Why the report and its JSON cannot be written there, or None (the directory is created if missing)."""
    from mock_server.proxy.report import json_path

    if report.is_dir() or json_path(report).is_dir():
        return "is a directory; give a file name"
    try:
        report.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=report.parent, prefix=".dpa-mock-proxy-probe-"):
            pass
    except OSError as exc:
        return f"cannot write into {report.parent} ({exc.strerror or exc})"
    return None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def _is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def _public_host(host: str) -> str:
    if _is_wildcard(host):
        return "127.0.0.1"
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"dpa-mock proxy: {message}", err=True)
    sys.exit(code)
