"""The `dpa-mock proxy` command."""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def proxy() -> None:
    """Forward to a deployment and judge every exchange (being built: issue 15)."""
    click.echo("dpa-mock proxy: not built yet", err=True)
    sys.exit(2)
