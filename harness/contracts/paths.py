"""Path rules for a packet: lexical rules (used by the models) and checks against a real checkout.

Lexical rules need no disk: FastVideo paths are repo-relative, never absolute, never contain
`..`, and sit in the right place (`tests/local_tests/`, `fastvideo/models/<bucket>/`, ...).
`check_packet_paths` adds what needs the checkout: the repo is a git repository, paths stay
inside it after resolving symlinks, and official reference files exist.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from harness.contracts.common import Problem

if TYPE_CHECKING:
    from harness.contracts.packet import ComponentContext

PATH_WORDS = ("planned", "not_created", "not_needed", "unknown")
_BUCKETS = {"vae": "vaes", "encoder": "encoders", "conditioner": "encoders", "dit": "dits"}
# Buckets a component type may also use: FastVideo keeps audio VAEs (and their configs) under `audio/`.
_EXTRA_BUCKETS = {"vae": ("audio",)}
_TARGET_ROOTS = ("fastvideo/models/", "fastvideo/configs/models/")
# Pipeline configs are flat files; a port may reuse or extend one (`stable_audio.py::StableAudioT2AConfig`).
_PIPELINE_CONFIGS = "fastvideo/configs/pipelines/"
_IMPORT_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def bucket_for(component_type: str) -> str | None:
    """The loader bucket a component type lives in, or None when any bucket may fit."""
    return _BUCKETS.get(component_type)


def buckets_for(component_type: str) -> tuple[str, ...]:
    """Every bucket a component type may put files in; empty when any bucket fits."""
    bucket = bucket_for(component_type)
    return (bucket, *_EXTRA_BUCKETS.get(component_type, ())) if bucket else ()


def strip_symbol(path: str) -> str:
    """`file.py::Class` names a symbol inside a file; the path is the part before `::`."""
    return path.split("::", 1)[0].strip()


def relative_path_problem(value: str) -> str | None:
    """Why `value` is not a clean repo-relative path, or None."""
    if not value:
        return "is empty"
    if value.startswith(("/", "~", "\\")) or re.match(r"^[A-Za-z]:[\\/]", value):
        return f"must be repo-relative, not absolute ({value})"
    if "\\" in value:
        return f"must use `/` separators ({value})"
    if ".." in PurePosixPath(value).parts:
        return f"must not contain `..` ({value})"
    return None


def under_problem(value: str, prefix: str, what: str) -> str | None:
    """Why a repo-relative path is not under `prefix` (checked after normalising `./`)."""
    problem = relative_path_problem(value)
    if problem:
        return problem
    normal = PurePosixPath(value).as_posix()
    if not normal.startswith(prefix) or normal == prefix.rstrip("/"):
        return f"must be under {prefix} ({what}), got {value}"
    return None


def target_file_problem(value: str, component_type: str) -> str | None:
    """FastVideo target files live in a loader bucket that matches the component type."""
    path = strip_symbol(value)
    problem = relative_path_problem(path)
    if problem:
        return problem
    normal = PurePosixPath(path).as_posix()
    buckets = buckets_for(component_type)
    if normal.startswith(_PIPELINE_CONFIGS):
        rest = normal[len(_PIPELINE_CONFIGS):]
        if "/" in rest or not rest.endswith(".py") or rest == ".py":
            return f"must name a Python file directly in {_PIPELINE_CONFIGS}, got {value}"
        return None
    for root in _TARGET_ROOTS:
        if normal.startswith(root):
            parts = normal[len(root):].split("/")
            if len(parts) < 2 or not parts[0] or not parts[-1]:
                return f"must name a file inside a bucket, {root}<bucket>/<file>.py, got {value}"
            if buckets and parts[0] not in buckets:
                allowed = " or ".join(f"`{b}`" for b in buckets)
                return (f"component_type {component_type} belongs in bucket {allowed} "
                        f"({root}{buckets[0]}/...), got bucket `{parts[0]}`")
            if not normal.endswith(".py"):
                return f"must be a Python file, got {value}"
            return None
    expected = ", ".join(f"{root}{b}/" for root in _TARGET_ROOTS for b in (buckets or ("<bucket>",)))
    return f"must be under {expected} (or {_PIPELINE_CONFIGS} for a pipeline config), got {value}"


def is_import_path(value: str) -> bool:
    """`diffusers.models` or a bare package name (`stable_audio_tools`): dotted names, no separators."""
    return bool(_IMPORT_PATH_RE.match(value))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def _git_problem(repo: Path) -> Problem | None:
    import git  # GitPython; imported here so the CLI starts fast

    if not repo.is_dir():
        return Problem("--repo", f"{repo} is not a directory")
    try:
        bare = git.Repo(repo).bare
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return Problem("--repo", f"{repo} is not a git repository (run `git init` or point at the checkout root)")
    if bare:
        return Problem("--repo", f"{repo} is a bare git repository; point at a checkout with a working tree")
    return None


def fastvideo_paths(packet: ComponentContext) -> list[tuple[str, str]]:
    """(field path, value) of every FastVideo-side path in the packet; contract words skipped."""
    pairs: list[tuple[str, str]] = [
        (f"fastvideo_target_files[{i}]", strip_symbol(p)) for i, p in enumerate(packet.fastvideo_target_files)
    ]
    pairs += [
        ("local_tests_readme", packet.local_tests_readme),
        ("port_state_file", packet.port_state_file),
        ("parity_test", packet.parity_test),
        ("prototype_key_dumps.official", packet.prototype_key_dumps.official),
        ("prototype_key_dumps.fastvideo", packet.prototype_key_dumps.fastvideo),
        ("conversion.script", packet.conversion.script),
        ("conversion.converted_component_dir", packet.conversion.converted_component_dir),
    ]
    return [(field, value) for field, value in pairs if value not in PATH_WORDS]


def _repo_path_problems(packet: ComponentContext, repo: Path) -> list[Problem]:
    problems: list[Problem] = []
    root = repo.resolve()
    for field, value in fastvideo_paths(packet):
        lexical = relative_path_problem(value)
        if lexical:
            problems.append(Problem(field, lexical))
        elif not _inside((root / value).resolve(), root):
            problems.append(Problem(field, f"{value} resolves outside the repository (through a symlink)"))
    if packet.mode == "parity-debug" and not (root / packet.parity_test).is_file():
        problems.append(Problem("parity_test", f"{packet.parity_test} does not exist in the checkout; parity-debug "
                                               "debugs an existing parity test (parity-scaffold writes it first)"))
    return problems


def _official_root(packet: ComponentContext, repo: Path, notes: list[str]) -> tuple[Path | None, list[Problem]]:
    ref = packet.official_ref_dir
    if ref == "unknown":
        return None, []
    candidate = Path(ref).expanduser()
    candidate = candidate if candidate.is_absolute() else repo / candidate
    if candidate.is_dir():
        return candidate.resolve(), []
    if is_import_path(ref):
        notes.append(f"official_ref_dir {ref} is an import path; official files were not checked on disk")
        return None, []
    return None, [Problem("official_ref_dir", f"{ref} is not a directory (resolved to {candidate})")]


def _official_file_problems(packet: ComponentContext, repo: Path, notes: list[str]) -> list[Problem]:
    root, problems = _official_root(packet, repo, notes)
    if problems or (root is None and packet.official_ref_dir != "unknown"):
        return problems
    entries = [("official_definition_files", f) for f in packet.official_definition_files]
    entries += [("official_instantiation_files", f) for f in packet.official_instantiation_files]
    counters: dict[str, int] = {}
    for group, entry in entries:
        index = counters.get(group, 0)
        counters[group] = index + 1
        field = f"{group}[{index}].path"
        if entry.path == "unknown":
            continue
        path = Path(strip_symbol(entry.path)).expanduser()
        if root is None:  # official_ref_dir unknown: only absolute paths can be checked
            if not path.is_absolute():
                problems.append(Problem(field, "official_ref_dir is unknown, so a relative path cannot be located"))
            elif not path.is_file():
                problems.append(Problem(field, f"{path} does not exist"))
            continue
        if ".." in path.parts:
            problems.append(Problem(field, f"must not contain `..` ({entry.path})"))
            continue
        resolved = (path if path.is_absolute() else root / path).resolve()
        if not _inside(resolved, root):
            problems.append(Problem(field, f"{entry.path} is outside official_ref_dir {root}"))
        elif not resolved.is_file():
            problems.append(Problem(field, f"{entry.path} does not exist under official_ref_dir {root}"))
    return problems


def check_packet_paths(packet: ComponentContext, repo: Path, notes: list[str] | None = None) -> list[Problem]:
    """Every path rule that needs the checkout; returns problems (empty when all is well).

    `notes` (optional) collects remarks that are not problems, e.g. an import-path official_ref_dir.
    """
    notes = notes if notes is not None else []
    repo = Path(repo).expanduser()
    git_problem = _git_problem(repo)
    if git_problem:
        return [git_problem]
    return _repo_path_problems(packet, repo) + _official_file_problems(packet, repo, notes)
