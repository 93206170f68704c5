"""Provenance of an eval results directory: what code, packages, models and prices made it."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.evals.baselines import BASELINES
from harness.agents.models.pricing import UnknownPriceError, price_for

PACKAGES = (
    "fastvideo-harness", "pydantic", "typer", "rich", "PyYAML", "langgraph", "langgraph-checkpoint-sqlite",
    "openai", "anthropic", "GitPython", "docker", "torch", "numpy", "safetensors", "pytest", "ray",
)


def harness_git_state() -> dict[str, Any]:
    """Commit and dirty state of the harness source checkout (None when not a git checkout)."""
    src = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def model_price(model: str, overrides: dict[str, str] | None = None) -> dict[str, float]:
    """USD per million tokens for an eval model name; raises UnknownPriceError when unknown.

    Baselines and scripted/human/replay models cost nothing by construction; a provider model
    must have a price in the table (or one given) so a run is never silently counted as $0.
    """
    from harness.agents.providers import provider_of

    override = (overrides or {}).get(model)
    _, _, name = model.partition(":")
    found = provider_of(model)
    if override is None and (model in BASELINES or (found is not None and not found[0].api)):
        return {"input": 0.0, "output": 0.0, "cache_read": 0.0, "cache_write": 0.0}
    return price_for(name or model, override).model_dump()


def price_table(models: list[str], overrides: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
    """Prices for every model, or one error naming every model without a price."""
    table, missing = {}, []
    for model in models:
        try:
            table[model] = model_price(model, overrides)
        except UnknownPriceError:
            missing.append(model)
    if missing:
        raise UnknownPriceError(
            f"no price known for {', '.join(missing)}; give one with --price MODEL=IN,OUT "
            "(USD per million input/output tokens) before anything runs"
        )
    return table


def write_provenance(out_dir: Path, settings: dict[str, Any], prices: dict[str, dict[str, float]],
                     backend: dict[str, Any] | None = None) -> Path:
    """Write provenance.json; on a resumed run the earlier record is kept under `previous`.

    `backend` says where attempts run: the local pool, or a Ray cluster's nodes, GPU types and
    the package versions its workers import."""
    path = out_dir / "provenance.json"
    record: dict[str, Any] = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "harness": harness_git_state(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "settings": settings,
        "backend": backend or {"name": "local"},
        "prices_usd_per_mtok": prices,
    }
    if path.is_file():
        previous = json.loads(path.read_text())
        record["previous"] = previous.get("previous", []) + [{k: v for k, v in previous.items() if k != "previous"}]
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path
