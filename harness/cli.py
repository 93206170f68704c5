"""The `harness` command line: registers the commands each part of the harness defines."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from harness import __version__
from harness.contracts import commands as contract_commands
from harness.evals import commands as eval_commands
from harness.graph import commands as graph_commands
from harness.sandbox import commands as sandbox_commands

app = typer.Typer(
    name="harness",
    help="Agents port a model component into FastVideo and prove it with a parity test.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Example:  harness demo   (the whole loop on a bundled example, no API key needed)",
)


def _flags_show_no_value_type() -> None:
    """typer's rich help prints `<bool>` after a flag, which takes no value; print nothing
    there, as its plain help does."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:  # type: ignore[name-defined]
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_show_no_value_type()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"fastvideo-harness {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Agents port a model component into FastVideo and prove it with a parity test."""


contract_commands.register(app)
sandbox_commands.register(app)
graph_commands.register(app)
eval_commands.register(app)
