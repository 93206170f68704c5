"""CLI commands of the sandbox: `harness sandbox prune`."""

from __future__ import annotations

from typing import Annotated

import typer

PRUNE_EXAMPLE = "Example:  harness sandbox prune --dry-run"
sandbox_app = typer.Typer(help="Sandbox housekeeping (docker containers of runs).", no_args_is_help=True,
                          epilog=PRUNE_EXAMPLE)


@sandbox_app.command("prune", epilog=PRUNE_EXAMPLE)
def prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be removed, remove nothing.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Also remove containers of runs that are still live.")] = False,
) -> None:
    """Remove sandbox containers left behind by runs whose process is gone."""
    from harness.sandbox.executors.base import InfrastructureError
    from harness.sandbox.executors.docker import prune_containers

    try:
        names = prune_containers(dry_run=dry_run, include_live=all_)
    except InfrastructureError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    verb = "would remove" if dry_run else "removed"
    for name in names:
        typer.echo(f"{verb} {name}")
    typer.echo(f"{len(names)} container(s) {'to remove' if dry_run else 'removed'}")


def register(app: typer.Typer) -> None:
    """Add this part's commands to the app."""
    app.add_typer(sandbox_app, name="sandbox")
