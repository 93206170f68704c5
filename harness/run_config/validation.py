"""Everything a run checks before it writes anything: options, checkout, packet, skill,
model access and sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.run_config.config import RunConfig, config_problems, harness_home, home_problems
from harness.run_config.inputs import input_problems


def validate_run_input(cfg: RunConfig) -> tuple[Any, list[str]]:
    """(packet, []) when the run can start, else (None or packet, every problem found).

    Reads only; the run directory and the worktree are made after this passes.
    """
    problems = list(config_problems(cfg))
    problems += home_problems(harness_home(cfg.home))
    problems += _repo_problems(Path(cfg.repo))
    problems += model_problems(cfg.model, cfg.price)
    problems += input_problems(cfg.model, cfg.base_url, cfg.sandbox, cfg.image, Path(cfg.repo), cfg.python)
    packet, packet_problems = _load_packet(Path(cfg.packet))
    problems += packet_problems
    if packet is not None:
        problems += mode_problems(packet)
    if packet is not None and not _repo_problems(Path(cfg.repo)):
        problems += _path_problems(packet, Path(cfg.repo))
        problems += _skill_problems(packet, Path(cfg.repo))
    return packet, problems


def model_problems(spec: str, price: str | None = None) -> list[str]:
    """The model spec names a registered provider, a priced API model (never a silent $0),
    and a file that exists and reads as one for a file provider (scripted, replay: the whole
    file is checked here, not at the first model call, after a worktree and branch were made)."""
    from harness.agents.models.pricing import UnknownPriceError, price_for
    from harness.agents.providers import provider_of, spec_help

    if not spec:
        return [f"model: no --model given: name the model that plays the agents ({spec_help()})"]
    found = provider_of(spec)
    if found is None:
        return [f"model: unknown model spec {spec!r}; expected {spec_help()}"]
    provider, arg = found
    if provider.api:
        try:
            price_for(arg, price)
        except (UnknownPriceError, ValueError) as err:
            return [f"model: {err}"]
        return []
    if provider.argument == "file":
        if not Path(arg).is_file():
            return [f"model: {provider.name} file {arg} does not exist"]
        return model_file_problems(spec, price)
    return []


def model_file_problems(spec: str, price: str | None = None) -> list[str]:
    """A file provider's file (scripted, replay) that does not load, as one problem (eval specs too)."""
    from harness.agents.models import ModelError, make_model

    try:
        make_model(spec, price=price)
    except (ModelError, ValueError, OSError, KeyError, TypeError, RecursionError) as err:  # ScriptError: ValueError
        text = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        return [f"model: {text}"]
    return []


def mode_problems(packet: Any) -> list[str]:
    """A run ports a component (prototype, parity-debug); writing the skip-gated parity test
    (parity-scaffold) is the parity skill's job, which the harness does not run."""
    if packet.mode == "parity-scaffold":
        from harness.skills.catalog import PARITY_SKILL

        return [f"mode: parity-scaffold belongs to the {PARITY_SKILL} skill (write the skip-gated parity test), "
                "which `harness run` does not run; scaffold the test, then run the packet with mode prototype "
                "or parity-debug"]
    return []


def _repo_problems(repo: Path) -> list[str]:
    import git

    if not repo.is_dir():
        return [f"repo: {repo} does not exist or is not a directory"]
    try:
        r = git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return [f"repo: {repo} is not a git checkout"]
    if r.bare:
        return [f"repo: {repo} is a bare repository; pass a checkout with a working tree"]
    if not r.head.is_valid():
        return [f"repo: {repo} has no commits yet"]
    return []


def _load_packet(path: Path) -> tuple[Any, list[str]]:
    from harness.contracts import PacketError, load_packet

    if not path.is_file():
        return None, [f"packet: {path} does not exist"]
    try:
        return load_packet(path), []
    except PacketError as err:
        return None, [_problem_text(p) for p in _problems_of(err)]


def _problems_of(err: Exception) -> list[Any]:
    problems = getattr(err, "problems", None)
    return list(problems) if problems else [str(err)]


def _problem_text(problem: Any) -> str:
    if isinstance(problem, str):
        return problem
    if isinstance(problem, tuple) and len(problem) == 2:
        return f"{problem[0]}: {problem[1]}"
    return str(problem)


def _path_problems(packet: Any, repo: Path) -> list[str]:
    from harness.contracts import check_packet_paths

    return [_problem_text(p) for p in check_packet_paths(packet, repo)]


def _skill_problems(packet: Any, repo: Path) -> list[str]:
    from harness.skills import skill_for

    try:
        skill_for(packet.component_type, repo)
    except Exception as err:  # the registry says why in its message
        return [f"component_type: no skill for {packet.component_type!r}: {err}"]
    return []
