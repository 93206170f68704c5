"""The sandbox kinds a run may choose, by name: one registry that the CLI, the run's option
checks, `harness doctor`, the eval and the executor factory all read.

A new kind is one module holding its executor and a factory, plus one line here:

    register_sandbox(SandboxKind("mykind", "what it isolates", make="harness.sandbox.executors.mykind:make"))

`make` is a callable or a "module:attribute" path, imported only when a run makes an executor,
so listing the kinds (the CLI's --help) imports nothing heavy. A test or a plugin may register
a kind at runtime with `@sandbox_kind("name", "help")` on its factory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, Union

# A factory: (ws, *, image, gpus, network, run_id, memory, pids_limit, python, access, **options)
# -> an Executor, not started. Host checks: (image, repo, python) -> problems, each naming its fix.
Ref = Union[str, Callable[..., Any]]


@dataclass(frozen=True)
class SandboxKind:
    name: str
    help: str  # one line: what it isolates (--help, doctor)
    make: Ref
    host_problems: Ref | None = None  # what this machine lacks for it, checked before a run
    isolated: bool = True  # False: the agent's code could write the run's own records
    runs_image_python: bool = False  # tests run the image's python, so --python does not apply
    network_switch: bool = True  # False: commands have the host's network whatever --network says
    gpu_counts: bool = False  # takes --gpus N and device ids, not only all | none
    cuda_fix: str = "the host needs the NVIDIA driver and a CUDA build of torch"

    def factory(self) -> Callable[..., Any]:
        return _load(self.make)

    def problems_on_host(self, image: str | None, repo: Any, python: str | None) -> list[str]:
        return list(_load(self.host_problems)(image, repo, python)) if self.host_problems else []


_KINDS: dict[str, SandboxKind] = {}


def register_sandbox(kind: SandboxKind) -> SandboxKind:
    """Add (or replace) a sandbox kind under its name."""
    _KINDS[kind.name] = kind
    return kind


F = TypeVar("F", bound=Callable[..., Any])


def sandbox_kind(name: str, help: str, **traits: Any) -> Callable[[F], F]:
    """Decorator form of register_sandbox for a factory defined in the registering module."""

    def register(make: F) -> F:
        register_sandbox(SandboxKind(name, help, make=make, **traits))
        return make

    return register


def sandbox_names() -> tuple[str, ...]:
    return tuple(_KINDS)


def sandbox_choices() -> str:
    """The names for a help text or a message: "docker | bwrap | local"."""
    return " | ".join(_KINDS)


def get_sandbox(name: str) -> SandboxKind:
    """The kind named `name`; a ValueError listing the registered kinds otherwise."""
    try:
        return _KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown sandbox {name!r}; registered: {', '.join(_KINDS)}") from None


def _load(ref: Ref) -> Callable[..., Any]:
    if callable(ref):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


# The built-in kinds: one line each.
register_sandbox(SandboxKind(
    "docker", "a container from --image, no network unless --network, resource limits, GPUs by count or id",
    make="harness.sandbox.executors.docker:make_docker_executor",
    host_problems="harness.sandbox.executors.docker:docker_host_problems",
    runs_image_python=True, gpu_counts=True,
    cuda_fix="install the NVIDIA container toolkit and check `docker run --gpus all <image> nvidia-smi`"))
register_sandbox(SandboxKind(
    "bwrap", "bubblewrap namespaces on the host's files, no network unless --network, resource limits",
    make="harness.sandbox.executors.process:make_bwrap_executor",
    host_problems="harness.sandbox.executors.process:bwrap_host_problems",
    cuda_fix="the host needs the NVIDIA driver (/dev/nvidia*) and a CUDA build of torch"))
register_sandbox(SandboxKind(
    "local", "a plain subprocess: no isolation, the host's network",
    make="harness.sandbox.executors.process:make_local_executor", isolated=False, network_switch=False))
