"""Checks of what a run depends on outside the packet, made before anything is created.

A missing API key, an unreachable local model server, a stopped Docker engine, a missing
image or an absent bwrap would otherwise fail only after the worktree, branch and run
directory exist (and after retries). Each problem names its fix; the runner exits 2.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

# A local server answers its model list at once; a few seconds means it is not there.
ENDPOINT_TIMEOUT_S = 3.0


def input_problems(model: str, base_url: str | None, sandbox: str, image: str | None,
                   repo: Path | None = None, python: str | None = None) -> list[str]:
    """Everything outside the packet a run needs: model access and the sandbox."""
    return model_access_problems(model, base_url) + sandbox_problems(sandbox, image, repo, python)


def model_access_problems(spec: str, base_url: str | None = None) -> list[str]:
    """An API model needs its key (by env var name) or a compatible server that answers."""
    from harness.agents.providers import provider_of

    found = provider_of(spec)
    if found is None or not found[0].api:
        return []
    provider = found[0]
    url = base_url or (os.environ.get(provider.url_env) if provider.url_env else None) or None
    if url is None:
        if os.environ.get(str(provider.key_env)):
            return []
        return [f"model: {spec} needs an API key: export {provider.key_env}=... "
                f"(or pass --base-url for a compatible local server)"]
    return endpoint_problems(provider.name, url)


def endpoint_problems(provider: str, url: str) -> list[str]:
    """A GET of the server's model list; any HTTP answer (even 401/404) means it is there."""
    import httpx

    from harness.agents.providers import get_provider

    models_url = url.rstrip("/") + get_provider(provider).models_path
    try:
        httpx.get(models_url, timeout=ENDPOINT_TIMEOUT_S)
    except httpx.HTTPError as err:
        return [f"model: the server at {url} does not answer ({type(err).__name__}: {err}); "
                "start it, or fix --base-url"]
    return []


def sandbox_problems(sandbox: str, image: str | None, repo: Path | None = None, python: str | None = None) -> list[str]:
    """What this machine lacks for the sandbox kind (its registry entry's host check), and the
    pytest of the harness's own interpreter where the kind runs the project's python."""
    from harness.sandbox.registry import get_sandbox

    try:
        kind = get_sandbox(sandbox)
    except ValueError:
        return []  # the option checks (config_problems, check_config) name it with the registered kinds
    problems = kind.problems_on_host(image, repo, python)
    if kind.runs_image_python:
        return problems
    from harness.sandbox.interpreter import choose_interpreter

    # When the sandbox runs tests with the harness's own interpreter, it must have pytest
    # (another interpreter is checked inside the sandbox by the preflight).
    own = choose_interpreter(repo, python).path == Path(sys.executable).absolute()
    if own and importlib.util.find_spec("pytest") is None:
        problems.append(f"sandbox: {sys.executable} has no pytest, and the {sandbox} sandbox runs tests with it; "
                        f"install pytest into it ({sys.executable} -m pip install pytest), pass --python, "
                        "or choose --sandbox docker")
    return problems
