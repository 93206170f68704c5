"""Run configuration and the on-disk layout of runs (`$HARNESS_HOME/runs/<run_id>/`)."""

from __future__ import annotations

import errno
import os
import re
import secrets
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, get_args

from harness.sandbox.executors.limits import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MEMORY,
    DEFAULT_MODEL_TIMEOUT_S,
    DEFAULT_PIDS,
    DEFAULT_SHM_SIZE,
    DEFAULT_TEST_TIMEOUT_S,
)

SandboxKind = str  # a name in harness.sandbox.registry
OnBudget = Literal["ask", "blocked"]

RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def option(default: Any = None, help: str = "", *, required: bool = False, factory: Any = None,
           at_least: float | None = None, positive: bool = False, unit: str = "") -> Any:
    """A run option: its default, its help (the CLI's), and the bounds config_problems checks
    (`at_least`, or `positive`; None is always allowed: "no limit")."""
    meta = {"help": help, "at_least": at_least, "positive": positive, "unit": unit}
    if required:
        return field(metadata=meta)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    """Every run option, once: the defaults, help texts and bounds that `harness run`,
    `harness doctor`, the eval and the LangGraph server's `config` input all take from here."""

    packet: Path = option(help="The component packet (component_context), YAML or JSON.", required=True)
    repo: Path = option(help="The FastVideo checkout to port into (never written).", required=True)
    model: str = option("human", "The model that plays the agents.")
    base_url: str | None = option(None, "OpenAI-compatible server URL.")
    price: str | None = option(None, "USD per million tokens 'in,out[,cache_read,cache_write]' for a model not in "
                                     "the price table.")
    context_window: int | None = option(None, "The model's context window in tokens (any provider; e.g. a local "
                                              "server's limit).")
    sandbox: SandboxKind = option("docker", "Where commands and tests run.")
    image: str | None = option(None, "Docker image for the sandbox (e.g. FastVideo's dev image).")
    gpus: str = option("none", "all | N | device=0,1 | none (bwrap: all or none).")
    python: str | None = option(None, "bwrap/local: the project's python (default: the checkout's .venv, else the "
                                      "harness's own).")
    sandbox_user: str = option("auto", "docker: auto | root | UID[:GID] (auto checks the image's python first).")
    memory: str = option(DEFAULT_MEMORY, "Memory limit (docker, bwrap), e.g. 8g, 64g.")
    shm_size: str = option(DEFAULT_SHM_SIZE, "docker: /dev/shm size (torch DataLoader workers need more than 64m).")
    pids_limit: int = option(DEFAULT_PIDS, "Process limit (docker, bwrap).")
    hf_cache: str | None = option(None, "A Hugging Face cache folder, mounted read-only (HF_HOME).")
    pass_env: list[str] = option(help="Pass a token variable by name to the parity test only: HF_TOKEN, "
                                      "HUGGINGFACE_HUB_TOKEN or HF_API_KEY.", factory=list)  # values never stored
    network: bool = option(False, "Allow network in the sandbox (off by default; said in the run log).")
    max_turns: int = option(30, "Turn budget per agent.", at_least=1)
    max_debug_rounds: int = option(4, "Parity-debug rounds.", at_least=0)
    max_usd: float | None = option(None, "Money budget for the run.", positive=True)
    max_seconds: float | None = option(None, "Time budget for the run.", positive=True)
    non_interactive: bool = option(False, "Never prompt; exit 3 on a question.")
    on_budget: OnBudget = option("ask", "When the budget is spent: ask a cost question, or stop blocked.")
    home: Path | None = option(None, "The harness home (default: $HARNESS_HOME, else ./.harness).")
    run_id: str | None = option(None, "Name the run (default: time-family-component-random).")
    notify: str | None = option(None, "Shell command run when the run pauses on a question or ends; the event JSON "
                                      "is on its stdin.")
    notify_url: str | None = option(None, "URL the pause/end event JSON is POSTed to.")
    max_file_mb: float = option(DEFAULT_MAX_FILE_MB, "Largest file a checkpoint commits (MB); bigger files are a "
                                                     "blocking finding.", positive=True)
    model_timeout_s: float = option(DEFAULT_MODEL_TIMEOUT_S, "Seconds one model request may take; a server that "
                                                             "hangs is cut there.", positive=True, unit="seconds")
    test_timeout_s: float = option(DEFAULT_TEST_TIMEOUT_S, "Seconds one parity test run may take.", positive=True,
                                   unit="seconds")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("packet", "repo", "home"):
            if data[key] is not None:
                data[key] = str(data[key])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("packet", "repo", "home"):
            if values.get(key) is not None:
                values[key] = Path(values[key])
        return cls(**values)


_FIELDS = {f.name: f for f in fields(RunConfig)}


def run_default(name: str) -> Any:
    """RunConfig's default for an option: the one value the CLI, the server and the graph use."""
    f = _FIELDS[name]
    return f.default_factory() if f.default is MISSING else f.default  # type: ignore[misc]


def run_help(name: str) -> str:
    """RunConfig's help text for an option (the CLI's --help)."""
    return str(_FIELDS[name].metadata["help"])


def configured(config: dict[str, Any], name: str) -> Any:
    """An option from the run state's JSON copy of RunConfig (its default when absent)."""
    return config.get(name, run_default(name))


def bound_problems(cfg: RunConfig) -> list[str]:
    """The options outside the bounds their RunConfig fields declare."""
    problems = []
    for f in fields(RunConfig):
        value, least, unit = getattr(cfg, f.name), f.metadata.get("at_least"), f.metadata.get("unit")
        if value is None:
            continue
        if least is not None and not value >= least:
            problems.append(f"{f.name}: must be {'0 or more' if least == 0 else f'at least {least}'}, not {value}")
        elif f.metadata.get("positive") and not value > 0:
            what = f"a positive number of {unit}" if unit else "positive"
            problems.append(f"{f.name}: must be {what}, not {value}")
    return problems


def config_problems(cfg: RunConfig) -> list[str]:
    """Problems with the run options themselves (the packet is checked by validate_packet)."""
    from harness.sandbox.registry import get_sandbox

    problems: list[str] = []
    try:
        kind = get_sandbox(cfg.sandbox)
    except ValueError as err:
        kind = None
        problems.append(f"sandbox: {err}")
    if cfg.on_budget not in get_args(OnBudget):
        problems.append(f"on_budget: must be {' or '.join(get_args(OnBudget))}, not {cfg.on_budget!r}")
    from harness.agents.models import MIN_CONTEXT_WINDOW

    if cfg.context_window is not None and cfg.context_window < MIN_CONTEXT_WINDOW:
        problems.append(f"context_window: must be at least {MIN_CONTEXT_WINDOW} tokens, not {cfg.context_window}")
    problems += bound_problems(cfg)
    from harness.agents.models.retry import RetryPolicy

    try:
        RetryPolicy()  # the retry settings the environment may change
    except ValueError as err:
        problems.append(f"retry policy: {err}")
    from harness.sandbox.executors.docker import parse_gpus

    try:
        parse_gpus(cfg.gpus)  # the executor's own parser: none | all | N | device=0,1
    except ValueError as err:
        problems.append(f"gpus: {err}")
    else:
        if kind is not None and not kind.gpu_counts and str(cfg.gpus) not in ("none", "all", "0"):
            problems.append(f"gpus: {cfg.gpus} GPUs need the {_kinds_where('gpu_counts', joined_by=' or ')} "
                            f"sandbox; {cfg.sandbox} sees the host's devices as they are")
    if cfg.notify_url is not None and not cfg.notify_url.startswith(("http://", "https://")):
        problems.append(f"notify_url: must be an http:// or https:// URL, not {cfg.notify_url!r}")
    problems += sandbox_option_problems(cfg)
    if cfg.run_id is not None and not RUN_ID_RE.match(cfg.run_id):
        problems.append(f"run_id: {cfg.run_id!r} may hold only letters, digits, '.', '_' and '-'")
    return problems


def _kinds_where(trait: str, value: bool = True, joined_by: str = " and ") -> str:
    """The registered sandbox kinds with a trait, for a message: "bwrap and local"."""
    from harness.sandbox.registry import get_sandbox, sandbox_names

    return joined_by.join(n for n in sandbox_names() if getattr(get_sandbox(n), trait) == value)


def sandbox_option_problems(cfg: RunConfig) -> list[str]:
    """The sandbox options a person can get wrong: checked before any worktree or model call.
    The sandbox's registry entry says which options apply (an unknown one: config_problems)."""
    from harness.sandbox.registry import get_sandbox, sandbox_names
    from harness.contracts.secrets import ALLOWED_TOKEN_ENV_VARS
    from harness.sandbox.executors.docker import user_for
    from harness.sandbox.executors.limits import parse_size
    from harness.sandbox.interpreter import interpreter_problem

    kind = get_sandbox(cfg.sandbox) if cfg.sandbox in sandbox_names() else None
    problems: list[str] = []
    if cfg.python:
        if kind is not None and kind.runs_image_python:
            problems.append(f"python: --python is for {_kinds_where('runs_image_python', False)}; "
                            f"{cfg.sandbox} runs the image's own python")
        elif (problem := interpreter_problem(Path(cfg.python).expanduser())):
            problems.append(f"python: {problem}")
    try:
        user_for(cfg.sandbox_user, Path("."))
    except ValueError as err:
        problems.append(f"sandbox_user: {err}")
    for name in ("memory", "shm_size"):
        try:
            parse_size(getattr(cfg, name))
        except ValueError as err:
            problems.append(f"{name}: {err}")
    if cfg.pids_limit < 8:
        problems.append(f"pids_limit: {cfg.pids_limit} is too small to run a shell and python")
    if cfg.hf_cache and not Path(cfg.hf_cache).expanduser().is_dir():
        problems.append(f"hf_cache: {cfg.hf_cache} is not a directory")
    for name in cfg.pass_env:
        if name not in ALLOWED_TOKEN_ENV_VARS:
            problems.append(f"pass_env: {name} is not a token variable the harness passes "
                            f"(allowed: {', '.join(ALLOWED_TOKEN_ENV_VARS)})")
    if cfg.network and kind is not None and not kind.network_switch:
        problems.append(f"network: the {cfg.sandbox} sandbox has the host's network anyway; --network is for "
                        f"{_kinds_where('network_switch')}")
    return problems


def harness_home(home: Path | None = None) -> Path:
    """`home`, else $HARNESS_HOME, else ./.harness in the current directory."""
    if home is not None:
        return Path(home).resolve()
    env = os.environ.get("HARNESS_HOME")
    return Path(env).resolve() if env else (Path.cwd() / ".harness").resolve()


# A run writes a worktree, a checkpoint database and logs; below this, it would die half-way.
MIN_FREE_BYTES = 64 * 1024 * 1024


def home_problems(home: Path) -> list[str]:
    """The harness home can take a new run: a directory (or one that can be made) where files
    can be written, with room for them. Checked without leaving anything behind."""
    import shutil
    import tempfile

    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return [f"harness home: {existing} is not a directory (HARNESS_HOME={home})"]
    try:
        # An unnamed temporary file: the probe leaves no name behind, even when it fails.
        with tempfile.TemporaryFile(dir=existing) as probe:
            probe.write(b"harness")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return [f"harness home: {existing} is full ({err.strerror}); free some space or set HARNESS_HOME"]
        return [f"harness home: cannot write in {existing} ({err.strerror or err}); set HARNESS_HOME "
                "to a writable directory"]
    free = shutil.disk_usage(existing).free
    if free < MIN_FREE_BYTES:
        return [f"harness home: {existing} is nearly full ({free // 2**20} MiB free; a run needs at least "
                f"{MIN_FREE_BYTES // 2**20} MiB for its worktree, checkpoints and logs); free some space or "
                "set HARNESS_HOME"]
    return []


def runs_dir(home: Path | None = None) -> Path:
    return harness_home(home) / "runs"


def run_dir(run_id: str, home: Path | None = None) -> Path:
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    return runs_dir(home) / run_id


def new_run_id(packet_family: str, component: str) -> str:
    """Readable and unique: <utc time>-<family>-<component>-<random>."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{packet_family}-{component}").strip("-")[:40]
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"
