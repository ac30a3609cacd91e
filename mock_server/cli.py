"""The `dpa-mock` command: serve the emulator on a production WSGI server, or check fixture files."""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import sys
import time
from dataclasses import replace
from typing import Any, ClassVar

import click

from mock_server.fixtures import FixtureError, load_catalog
from mock_server.settings import Settings, SettingsError, configure_logging, load_settings, settings_to_env
from mock_server.stopping import STOP_CLOSE_BUDGET, STOP_GRACE, close_within, serve_waitress, stops


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dpa-mock")
def main() -> None:
    """dpa-mock: an offline emulator of the DPA process-plan (预案) platform API."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option(
    "--port", type=int, default=None, help="Port to bind (default 29041; 0: any free port, named when serving)."
)
@click.option(
    "--fixtures",
    "fixtures",
    type=click.Path(file_okay=False),
    default=None,
    help="Directory of YAML fixtures (default: the bundled ones).",
)
@click.option(
    "--profile",
    "profile",
    metavar="NAME|FILE",
    default=None,
    help="Behave like a given deployment where the document is silent: a bundled profile (document, "
    "gateway) or a profile file, e.g. one `dpa-mock verify --write-profile` wrote. See "
    "docs/profiles.md. Precedence: defaults < profile < --config < DPA_MOCK_* < flags.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Settings file, YAML or TOML (see README: Configuration); a profile file works here too, "
    "and a `profile: NAME|FILE` key in it loads a profile under it.",
)
@click.option(
    "--state",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file keeping all state across restarts (default: in memory only).",
)
@click.option(
    "--clock",
    type=click.Choice(["real", "virtual"]),
    default=None,
    help="real (default): wall time plus offsets; virtual: time moves only via /__admin/clock/advance.",
)
@click.option("--threads", type=int, default=None, help="WSGI server threads per worker (default 1).")
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Server processes (default 1). More than one needs --state FILE, which they share.",
)
@click.option("--admin-token", default=None, help="Require this X-Admin-Token on /__admin (and allow non-loopback).")
@click.option(
    "--http-status",
    type=click.Choice(["mirror", "always200"]),
    default=None,
    help="HTTP status of error envelopes: mirror the code (default) or always 200.",
)
@click.option("--seed", type=int, default=None, help="Seed for `random` node outcomes.")
@click.option(
    "--server",
    type=click.Choice(["granian", "waitress"]),
    default="granian",
    show_default=True,
    help="HTTP server: granian (fastest measured; bodies are received whole under read_timeout "
    "before the app runs, see docs/performance.md) or waitress (pure Python).",
)
@click.option("--quiet", is_flag=True, help="No access log line per request.")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other setting, e.g. --set callback_retries=5 --set callback_backoff=0.5,1,2 (repeatable).",
)
def serve(
    config_file: str | None, profile: str | None, server: str, quiet: bool, assignments: tuple[str, ...], **options: Any
) -> None:
    """Serve the emulator (Ctrl-C stops it)."""
    try:
        # A dedicated flag names its setting as explicitly as --set does, and more specifically: it wins.
        flags = {k: v for k, v in options.items() if v is not None}
        if quiet:
            flags["log_requests"] = False
        settings = load_settings(config_file, profile=profile, **{**_assignments(assignments), **flags})
        load_catalog(settings.fixtures, settings.timezone)  # fail here, with file/key/reason, not in a worker
    except (SettingsError, FixtureError) as exc:
        click.echo(f"dpa-mock: {exc}", err=True)
        sys.exit(2)
    if not settings.admin_token and not _is_loopback(settings.host):
        click.echo(
            f"dpa-mock: warning: binding {settings.host} without --admin-token; the admin API still "
            "answers loopback clients only",
            err=True,
        )
    if settings.port == 0:
        # "Any free port": chosen here, so the line below names the port clients must use (and every worker,
        # and a respawned one, binds the same).
        settings = replace(settings, port=_free_port(settings.host))
    problem = _port_problem(settings.host, settings.port)
    if problem:
        click.echo(f"dpa-mock: cannot serve on {settings.host}:{settings.port}: {problem}", err=True)
        sys.exit(1)
    if settings.workers > 1 and server != "granian":
        click.echo("dpa-mock: --workers needs --server granian (waitress serves from one process)", err=True)
        sys.exit(2)
    workers = f", workers: {settings.workers}" if settings.workers > 1 else ""
    shaped = f", profile: {profile}" if profile else ""
    # Installed before the announcement: a stop sent by whoever read it is recorded. With Python's default
    # handler its KeyboardInterrupt could land in an import's finalizer during start-up and be dropped, and
    # the server served on (test_a_signal_during_start_up_stops_without_a_traceback[waitress], once in 40).
    stops.install()
    try:
        click.echo(
            f"dpa-mock serving on http://{settings.host}:{settings.port} (clock: {settings.clock}, "
            f"server: {server}{workers}{shaped})",
            err=True,
        )
        if not stops.requested:  # else stopped before anything was built
            (_serve_granian if server == "granian" else _serve_waitress)(settings)
    except KeyboardInterrupt:
        pass  # stopped while starting: nothing was served yet
    click.echo("dpa-mock stopped", err=True)
    if server == "waitress" or stops.requested:
        # granian's supervisor holds no state; a stop it did not handle itself came during start-up, whose
        # half-done imports must not turn the exit into a death by SIGINT (seen once: exit -2 after "stopped").
        _exit_now()


def _say(text: str) -> None:
    click.echo(f"dpa-mock: {text}", err=True)


def _serve_granian(settings: Settings) -> None:
    # stops (installed by serve) records a stop until granian installs its own handlers in serve().
    from granian.http import HTTP1Settings

    # The worker process builds the app from mock_server.wsgi, which reads these variables.
    os.environ.update(settings_to_env(settings))
    # RSGI, not WSGI: granian's WSGI interface streams a body into the app's thread, where a stalled client
    # holds it (and with one thread, every other client) for as long as it likes; the gate awaits bodies first.
    # A worker that dies is replaced, however often (granian's own loop exits after two deaths within 5.5 s,
    # taking the healthy workers down too); with several, the state file they share keeps everything.
    server = _respawning_granian(in_memory=not settings.state)(
        "mock_server.wsgi:gate",
        address=settings.host,
        port=settings.port,
        interface="rsgi",
        workers=settings.workers,
        log_enabled=True,
        log_access=False,
        respawn_failed_workers=True,
        # A worker still busy (a fault's latency, an advance waiting on a slow receiver, a callback attempt
        # its exit waits for) is killed this long after the stop instead of being waited for.
        workers_kill_timeout=int(STOP_GRACE + STOP_CLOSE_BUDGET),
        http1_settings=HTTP1Settings(header_read_timeout=max(1, int(settings.read_timeout * 1000))),
    )
    if not stops.requested:  # a stop during start-up whose exception a finalizer swallowed
        server.serve()


def _respawning_granian(in_memory: bool) -> type:
    from granian import Granian

    class RespawningGranian(Granian):  # type: ignore[misc, valid-type]  # granian exports Server as a variable chosen at import
        """Granian whose crash-loop detector never fires: a dead worker is replaced after a growing pause."""

        _deaths: ClassVar[dict[int, tuple[float, int]]] = {}  # worker index -> (last death, deaths in a row)

        def _respawn_workers(self, workers: list[int], spawn_target: Any, target_loader: Any, delay: float = 0) -> None:
            now = time.monotonic()
            pause = 0.0
            for idx in workers:
                last, streak = self._deaths.get(idx, (0.0, 0))
                streak = streak + 1 if now - last < 10 else 0
                self._deaths[idx] = (now, streak)
                pause = max(pause, min(0.25 * 2**streak, 5.0) if streak else 0.0)
            if in_memory:
                click.echo(
                    "dpa-mock: warning: the worker died and is replaced; without --state its codes, tokens "
                    "and runs are gone",
                    err=True,
                )
            if pause:
                time.sleep(pause)  # a worker that cannot start must not spin the supervisor
            super()._respawn_workers(workers, spawn_target, target_loader, delay)
            # What granian's crash-loop check reads (a private detail of granian 2.8; the worker tests in
            # tests/test_hostile_http.py fail if a later version changes it).
            getattr(self, "respawned_wrks", {}).clear()

    return RespawningGranian


def _serve_waitress(settings: Settings) -> None:
    from waitress.server import create_server

    from mock_server.app import create_app

    configure_logging()
    app = create_app(settings)
    platform = app.extensions["dpa_platform"]
    try:
        # waitress serves keep-alive connections from its thread pool: one thread starves 16 clients
        # (174 req/s measured), so it gets at least 8 whatever the granian-tuned default says.
        server: Any = create_server(
            app,
            host=settings.host,
            port=settings.port,
            threads=max(settings.threads, 8),
            ident="dpa-mock",
            clear_untrusted_proxy_headers=True,
            # waitress dispatches a request only once its body is in; a stalled or idle
            # connection is closed after read_timeout (checked every read_timeout).
            channel_timeout=max(settings.read_timeout, 1.0),
            cleanup_interval=max(settings.read_timeout, 1.0),
        )
        server.print_listen("Serving on http://{}:{}")
        serve_waitress(server, _say)
    finally:
        close_within(platform.close, STOP_CLOSE_BUDGET, _say)


def _exit_now() -> None:
    """Exit without Python's wait for the callback senders (daemon or not, concurrent.futures joins its own
    threads at exit): an attempt on the wire to a slow receiver would hold the process up to callback_timeout,
    whatever it is, with nowhere left to record its outcome (the state is closed). So cut, the delivery stays
    pending: a --state file sends it again after a restart."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _free_port(host: str) -> int:
    """A port the OS says is free on `host` now (0 if the host cannot be bound: _port_problem then says why)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
            0
        ]
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
            return int(probe.getsockname()[1])
    except OSError:
        return 0


def _port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen there, or None. SO_REUSEADDR as the server sets it: connections of a
    stopped or crashed server lingering in TIME_WAIT do not count, only another listener does."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot resolve {host!r} ({exc.strerror}); pass --host with an address of this machine"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
            probe.listen(1)
        except PermissionError:
            return f"permission denied for port {port}; choose a port above 1023 with --port"
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is in use by another process; stop it (e.g. `ss -ltnp 'sport = :{port}'` "
                    "shows which) or choose another port with --port"
                )
            return f"{exc.strerror}; check --host"
    return None


@main.command("check-fixtures")
@click.argument("directory", type=click.Path(file_okay=False), required=False)
def check_fixtures(directory: str | None) -> None:
    """Load a fixtures directory and report the first mistake, as start-up would."""
    try:
        catalog = load_catalog(directory)
    except FixtureError as exc:
        click.echo(f"dpa-mock: {exc}", err=True)
        sys.exit(2)
    click.echo(f"ok: {len(catalog.apps)} apps, {len(catalog.plans)} plans")


def _assignments(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip().replace("-", "_")] = value
    return out


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _add_commands_of_other_features() -> None:
    # Each lives with its feature; imported here so `dpa-mock --help` lists them. Their heavy imports
    # (pytest, schemathesis) happen only when they run.
    from contract_tests.cli import diff, verify
    from mock_server.proxy.cli import proxy

    main.add_command(verify)
    main.add_command(diff)
    main.add_command(proxy)


_add_commands_of_other_features()
