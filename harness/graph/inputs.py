"""Checks of what a run depends on outside the packet, made before anything is created.

A missing API key, an unreachable local model server, a stopped Docker engine, a missing
image or an absent bwrap would otherwise fail only after the worktree, branch and run
directory exist (and after retries). Each problem names its fix; the runner exits 2.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path
from typing import Any

# Per API provider: the env var holding its key and the one naming a compatible server.
PROVIDER_ENV: dict[str, tuple[str, str]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
}
# A local server answers its model list at once; a few seconds means it is not there.
ENDPOINT_TIMEOUT_S = 3.0


def input_problems(model: str, base_url: str | None, sandbox: str, image: str | None,
                   repo: Path | None = None, python: str | None = None) -> list[str]:
    """Everything outside the packet a run needs: model access and the sandbox."""
    return model_access_problems(model, base_url) + sandbox_problems(sandbox, image, repo, python)


def model_access_problems(spec: str, base_url: str | None = None) -> list[str]:
    """An API model needs its key (by env var name) or a compatible server that answers."""
    provider, _, name = spec.partition(":")
    if provider not in PROVIDER_ENV or not name:
        return []
    key_env, url_env = PROVIDER_ENV[provider]
    url = base_url or os.environ.get(url_env) or None
    if url is None:
        if os.environ.get(key_env):
            return []
        return [f"model: {spec} needs an API key: export {key_env}=... "
                f"(or pass --base-url for a compatible local server)"]
    return endpoint_problems(provider, url)


def endpoint_problems(provider: str, url: str) -> list[str]:
    """A GET of the server's model list; any HTTP answer (even 401/404) means it is there."""
    import httpx

    models_url = url.rstrip("/") + ("/v1/models" if provider == "anthropic" else "/models")
    try:
        httpx.get(models_url, timeout=ENDPOINT_TIMEOUT_S)
    except httpx.HTTPError as err:
        return [f"model: the server at {url} does not answer ({type(err).__name__}: {err}); "
                "start it, or fix --base-url"]
    return []


def sandbox_problems(sandbox: str, image: str | None, repo: Path | None = None, python: str | None = None) -> list[str]:
    if sandbox == "docker":
        return docker_problems(image)
    from harness.sandbox.interpreter import choose_interpreter

    problems = []
    if sandbox == "bwrap" and shutil.which("bwrap") is None:
        problems.append("sandbox: bwrap is not installed; install bubblewrap (apt-get install bubblewrap) "
                        "or choose --sandbox docker")
    # When bwrap and local run tests with the harness's own interpreter, it must have pytest
    # (another interpreter is checked inside the sandbox by the preflight).
    own = choose_interpreter(repo, python).path == Path(sys.executable).absolute()
    if own and importlib.util.find_spec("pytest") is None:
        problems.append(f"sandbox: {sys.executable} has no pytest, and the {sandbox} sandbox runs tests with it; "
                        f"install pytest into it ({sys.executable} -m pip install pytest), pass --python, "
                        "or choose --sandbox docker")
    return problems


def docker_problems(image: str | None) -> list[str]:
    """The engine answers a ping and the image is on this machine (nothing is pulled)."""
    import docker
    import docker.errors

    from harness.sandbox.executors.docker import DEFAULT_IMAGE

    try:
        client: Any = docker.from_env()
        client.ping()
    except Exception as err:  # the SDK raises several unrelated types for an absent engine
        return [f"sandbox: cannot reach the Docker engine ({err}); start dockerd, set DOCKER_HOST, "
                "or choose --sandbox bwrap"]
    tag = image or DEFAULT_IMAGE
    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        hint = "scripts/build-sandbox-image.sh builds it" if tag == DEFAULT_IMAGE else f"docker pull {tag}"
        return [f"sandbox: docker image {tag!r} is not on this machine; {hint}, or pass --image"]
    except docker.errors.APIError as err:
        return [f"sandbox: cannot look up docker image {tag!r}: {err}"]
    finally:
        client.close()
    return []
