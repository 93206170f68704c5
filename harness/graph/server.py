"""The graph as LangGraph's own server (`langgraph dev`, see langgraph.json) runs it.

A client starts a run with the input `{"config": {...RunConfig fields...}}` (a field left out
takes RunConfig's default, as `harness run` does); the first node,
`open_run`, checks every input the way `harness run` does and only then makes the run's
directory. Runs started this way live in `$HARNESS_HOME`, else in `~/.fastvideo-harness`:
never in the served folder, whose file watcher would reload the server on every write.

Where a served run executes the agent's code is the server's decision, not a client's: the
sandbox kind, its image, GPUs and user, the interpreter, the HF cache, the network switch and
the variables passed through come from the server's environment (`HARNESS_SERVER_SANDBOX`,
`HARNESS_SERVER_NETWORK=1`, `HARNESS_SERVER_PASS_ENV=HF_TOKEN,...`, `HARNESS_SERVER_PYTHON`,
...; see SERVER_SETTINGS), and a client input that names one of them is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from harness.graph.state import RunState

SERVER_HOME = Path.home() / ".fastvideo-harness"
# RunConfig fields only the server sets, each from HARNESS_SERVER_<NAME> (unset: RunConfig's default).
SERVER_SETTINGS = ("sandbox", "image", "gpus", "sandbox_user", "python", "hf_cache", "network", "pass_env")


def server_settings(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The server-owned RunConfig fields from the server's environment."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for name in SERVER_SETTINGS:
        raw = environ.get(f"HARNESS_SERVER_{name.upper()}")
        if raw is None or raw == "":
            continue
        if name == "network":
            values[name] = raw.strip().lower() in ("1", "true", "yes", "on")
        elif name == "pass_env":
            values[name] = [v.strip() for v in raw.split(",") if v.strip()]
        else:
            values[name] = raw
    return values


class RunContext(TypedDict, total=False):
    """The graph's context schema. The harness's own runner passes its live `RunResources`;
    a server client may pass `{"home": DIR}` to choose where the run lives."""

    home: str


def open_run(state: RunState, runtime: Runtime) -> dict[str, Any]:
    """Check the inputs and make the run directory; nothing is created for bad input."""
    if state.get("run_id"):  # started by the harness's own runner, which did all this
        return {}
    from harness.run_config.config import RunConfig, new_run_id
    from harness.run_config.validation import validate_run_input
    from harness.runs.runner import SERVER_DRIVER, absolute_config, create_run_dir

    data = dict(state.get("config") or {})
    sent = [name for name in SERVER_SETTINGS if name in data]
    if sent:
        return {"outcome": "invalid", "problems": [
            f"config.{name}: set by the server's own configuration (HARNESS_SERVER_{name.upper()}), never by a "
            "client" for name in sent]}
    data.update(server_settings())
    context = runtime.context if isinstance(getattr(runtime, "context", None), dict) else {}
    data["home"] = data.get("home") or context.get("home") or os.environ.get("HARNESS_HOME") or str(SERVER_HOME)
    data["non_interactive"] = True  # questions pause the graph; nobody is at a terminal
    try:
        cfg = absolute_config(RunConfig.from_json(data))
    except TypeError as err:
        return {"problems": [f"config: needs at least packet and repo ({err})"], "outcome": "invalid"}
    packet, problems = validate_run_input(cfg)
    run_id = cfg.run_id or (new_run_id(packet.model_family, packet.component) if packet is not None else "")
    if not problems:
        try:
            rdir = create_run_dir(cfg, run_id, driver=SERVER_DRIVER)
        except FileExistsError:
            problems = [f"run_id: run {run_id!r} already exists; choose another id"]
    if problems:
        return {"problems": problems, "outcome": "invalid", "config": cfg.to_json()}
    cfg.run_id = run_id
    return {"run_id": run_id, "run_dir": str(rdir), "config": cfg.to_json()}


def after_open(state: RunState) -> str:
    return "__end__" if state.get("problems") else "validate_packet"
