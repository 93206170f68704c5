"""CLI commands of the contracts part: `harness validate` and `harness schema`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

INVALID_INPUT = 2

SCHEMA_NAMES = ("packet", "handoff", "escape-hatch", "retry-request", "parity")


def validate(
    packet: Annotated[Path, typer.Argument(help="Packet file: JSON, YAML, or markdown/text with a `component_context:` block.")],
    repo: Annotated[
        Optional[Path],
        typer.Option("--repo", help="FastVideo checkout (a git repository) to check the packet's paths against."),
    ] = None,
) -> None:
    """Validate a component packet; prints OK and a summary, or every problem (exit code 2)."""
    from harness.contracts.loading import load_packet
    from harness.contracts.common import PacketError
    from harness.contracts.paths import check_packet_paths

    try:
        loaded = load_packet(packet)
    except PacketError as exc:
        _fail(exc.problems)
    notes = [str(problem) for problem in loaded.skill_start_problems()]
    if repo is not None:
        problems = check_packet_paths(loaded, repo, notes)
        if problems:
            _fail(problems)
    typer.echo(f"OK {loaded.summary()}")
    for note in notes:
        typer.echo(f"note: {note}")


def _fail(problems: list) -> None:
    from harness.contracts.secrets import find_secret

    typer.echo(f"invalid packet: {len(problems)} problem(s)", err=True)
    for problem in problems:
        # Messages quote the offending values; a token would be printed, so it is withheld.
        shown = f"{problem.field_path}: holds a value that looks like a secret (not shown)" if find_secret(str(problem)) else str(problem)
        typer.echo(shown, err=True)
    raise typer.Exit(INVALID_INPUT)


def schema(
    name: Annotated[str, typer.Argument(help=f"One of: {', '.join(SCHEMA_NAMES)}.")],
) -> None:
    """Print the JSON Schema of a contract document."""
    from harness.contracts import ComponentContext, ComponentParity, ComponentSkillHandoff, ConversionRetryRequest, EscapeHatch

    models = {
        "packet": ComponentContext,
        "handoff": ComponentSkillHandoff,
        "escape-hatch": EscapeHatch,
        "retry-request": ConversionRetryRequest,
        "parity": ComponentParity,
    }
    if name not in models:
        typer.echo(f"unknown schema {name!r}; choose one of: {', '.join(SCHEMA_NAMES)}", err=True)
        raise typer.Exit(INVALID_INPUT)
    typer.echo(json.dumps(models[name].model_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this part's commands to the app."""
    app.command("validate", epilog="Example:  harness validate packet.json --repo ~/FastVideo")(validate)
    app.command("schema", epilog="Example:  harness schema handoff > handoff.schema.json")(schema)
