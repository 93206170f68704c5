"""The project's environment for eval attempts, suite builds and graders: the options `harness
run` takes for where tests run (sandbox, image, interpreter, GPUs, HF cache, token variables),
checked once before anything runs and recorded with every attempt."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

NO_GPUS = ("none", "0", "")


@dataclass(frozen=True)
class Environment:
    sandbox: str = "local"
    image: str | None = None
    python: str | None = None       # bwrap/local: the project's interpreter
    gpus: str = "none"              # every attempt's GPUs (per-task GPU slots override it)
    hf_cache: str | None = None
    pass_env: tuple[str, ...] = field(default_factory=tuple)

    def run_config(self, packet: Path, repo: Path, gpus: str | None = None, **fields: Any):
        """A RunConfig with these settings (the one place they become a run's)."""
        from harness.run_config.config import RunConfig

        return RunConfig(packet=Path(packet), repo=Path(repo), sandbox=self.sandbox,  # type: ignore[arg-type]
                         image=self.image, gpus=gpus or self.gpus, python=self.python, hf_cache=self.hf_cache,
                         pass_env=list(self.pass_env), **fields)

    def executor_options(self, packet: Path, repo: Path, gpus: str | None = None) -> dict[str, Any]:
        from harness.runs.resources import executor_options

        return executor_options(self.run_config(packet, repo, gpus))

    def has_gpus(self, gpus: str | None = None) -> bool:
        return str(gpus or self.gpus).lower() not in NO_GPUS

    def problems(self, repo: Path | None = None) -> list[str]:
        """What is wrong with the settings on this machine, before the first attempt."""
        from harness.run_config.config import config_problems
        from harness.run_config.inputs import sandbox_problems

        cfg = self.run_config(Path("packet.json"), Path(repo or "."))
        problems = [p for p in config_problems(cfg) if not p.startswith(("run_id", "notify"))]
        problems += sandbox_problems(self.sandbox, self.image, repo, self.python)
        problems += [f"pass_env: {name} is not set in this shell" for name in self.pass_env if not os.environ.get(name)]
        return list(dict.fromkeys(problems))

    def record(self) -> dict[str, Any]:
        """What an attempt ran with (variable names only, never their values)."""
        data = asdict(self)
        data["pass_env"] = list(self.pass_env)
        if self.python:
            data["python"] = str(Path(self.python).expanduser())
        return data


def unmet_needs(needs: Any, env: Environment, repo: Path, official_present: bool = True) -> list[str]:
    """What a machine with these settings lacks of what a task needs (empty: it can run)."""
    unmet = []
    if needs.cuda and not env.has_gpus():
        unmet.append("CUDA (no GPU given: --gpus, or --gpus-per-task with docker or Ray)")
    elif needs.cuda and not nvidia_present():
        unmet.append("CUDA (this machine has no NVIDIA device, though GPUs were given)")
    if needs.official and not official_present:
        unmet.append(f"official reference {needs.official} (not on this machine)")
    unmet += [f"opt-in variable {gate} (the test skips without it; the harness does not pass it)"
              for gate in needs.env]
    unmet += [f"weights {w}" for w in needs.weights if not weights_here(w, env, repo)]
    return unmet


def nvidia_present() -> bool:
    """Whether this machine has an NVIDIA driver's devices (what any CUDA sandbox needs)."""
    dev = Path("/dev")
    return (dev / "nvidiactl").exists() or any(dev.glob("nvidia[0-9]*"))


def weights_here(weights: str, env: Environment, repo: Path) -> bool:
    """Whether weights the test reads are on this machine: a folder of the checkout, or a
    Hugging Face repository in the --hf-cache folder."""
    from harness.evals.mining import HF_REPO

    if weights.endswith("/"):
        return (Path(repo) / weights).is_dir()
    if HF_REPO.match(weights):
        org, name = weights.split("/", 1)
        cache = Path(env.hf_cache).expanduser() if env.hf_cache else None
        return bool(cache) and any((cache / sub / f"models--{org}--{name}").is_dir() for sub in ("hub", "."))
    return False  # a variable the harness does not pass into the sandbox, or weights it cannot name
