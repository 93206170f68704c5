"""CLI commands of this part; `register(app)` adds them to the `harness` app."""

import typer


def register(app: typer.Typer) -> None:
    """Add this part's commands to the app."""
