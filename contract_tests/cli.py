"""`dpa-mock verify`: the contract kit as a command (needs the `[kit]` extra)."""

from __future__ import annotations

import sys

import click


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def verify(ctx: click.Context) -> None:
    """Run the contract kit against a deployment (being built: issue 11)."""
    click.echo("dpa-mock verify: not built yet", err=True)
    sys.exit(2)
