"""A mined task's base commit: the checkout's commit with the component's native code removed,
in the suite's own git repository (never the user's branches).

What goes is decided by what the rest of the repository imports. The model module and its
private blocks go unless another file imports them when it is imported; the registry lines that
resolve to them go; an export (`from <config> import X` in a package `__init__`) goes when
nothing else uses its names, and the config goes when nothing imports it any more. What stays
is recorded with the reason. The commit has no parent, so the agent's repository holds no
history in which the removed code could be read back.
"""

from __future__ import annotations

import ast
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.evals.mining import REGISTRY, CommitFiles, Component, git, import_closure, importers

PACKAGE_INIT = "fastvideo/__init__.py"

BASE_AUTHOR = {"GIT_AUTHOR_NAME": "fastvideo-harness", "GIT_AUTHOR_EMAIL": "suite@harness.invalid",
               "GIT_COMMITTER_NAME": "fastvideo-harness", "GIT_COMMITTER_EMAIL": "suite@harness.invalid",
               "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}


@dataclass
class Removal:
    """What a component's base leaves out, edits and keeps."""

    removed: list[str] = field(default_factory=list)          # files deleted
    edited: dict[str, str] = field(default_factory=dict)      # path -> new text (registry lines, exports gone)
    kept: list[str] = field(default_factory=list)             # "path: why it stays"
    blocked: str | None = None                                # why no base can be made

    @property
    def touched(self) -> list[str]:
        return sorted({*self.removed, *self.edited})


def _word_users(files: CommitFiles, names: set[str], skip: set[str]) -> dict[str, list[str]]:
    """name -> the Python files (outside `skip`) that use it as a word."""
    users: dict[str, list[str]] = {n: [] for n in names}
    for path in files.paths:
        if not path.endswith(".py") or path in skip:
            continue
        text = files.read(path) or ""
        for name in names:
            if name in text and re.search(rf"\b{re.escape(name)}\b", text):
                users[name].append(path)
    return users


def _exports(files: CommitFiles, module: str) -> list[tuple[str, ast.ImportFrom]]:
    """(package __init__, statement) for each module-level import of `module` in an `__init__`."""
    name = module.removesuffix(".py").replace("/", ".")
    out = []
    for path in importers(files, module):
        if PurePosixPath(path).name == "__init__.py":
            tree = files.tree(path)
            for node in tree.body if tree else []:
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == name:
                    out.append((path, node))
    return out


def _drop_export(text: str, node: ast.ImportFrom) -> str:
    """The `__init__` without the import statement and the `__all__` entries of its names."""
    names = {alias.asname or alias.name for alias in node.names}
    lines = text.splitlines(keepends=True)
    del lines[node.lineno - 1:node.end_lineno]
    out = []
    for line in lines:
        stripped = line.strip().rstrip(",").strip("'\"")
        if stripped in names and line.strip().rstrip(",")[:1] in "'\"":
            continue  # an `__all__` entry alone on its line
        for name in names:
            line = re.sub(rf"""(['"]){re.escape(name)}\1\s*,\s*""", "", line)
        out.append(line)
    return "".join(out)


def _drop_registry_lines(text: str, archs: list[str]) -> str:
    tree = ast.parse(text)
    doomed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value in archs:
                    doomed |= set(range(key.lineno, value.end_lineno + 1))
    return "".join(line for n, line in enumerate(text.splitlines(keepends=True), 1) if n not in doomed)


def plan_removal(files: CommitFiles, component: Component, keep_config: bool = False,
                 package_files: set[str] | None = None) -> Removal:
    """Decide what the base leaves out; `keep_config` keeps the config and its exports (when the
    package did not import without them). `package_files`: what `import fastvideo` runs."""
    plan = Removal()
    native = set(component.files)
    tests = {t.path for t in component.tests}
    package = import_closure(files, [PACKAGE_INIT]) if package_files is None else package_files
    for path in component.files:
        if path in package:
            plan.blocked = f"{path} runs when the package is imported (import fastvideo would break without it)"
            return plan
        users = {p: at_import for p, at_import in importers(files, path).items()
                 if p not in native and p not in tests and p != REGISTRY}
        if users:
            plan.kept.append(f"{path}: removed, though {', '.join(sorted(users)[:3])} import it (they fail until "
                             "the port exists; `import fastvideo` does not run them)")
    plan.removed = list(component.files)
    if component.registry_archs and (registry := files.read(REGISTRY)) is not None:
        plan.edited[REGISTRY] = _drop_registry_lines(registry, component.registry_archs)
    if component.config:
        _plan_config(files, component, plan, keep_config)
    return plan


def _plan_config(files: CommitFiles, component: Component, plan: Removal, keep_config: bool) -> None:
    config = component.config
    if keep_config:
        plan.kept.append(f"{config}: kept with its exports (the package does not import without it)")
        return
    exports = _exports(files, config)
    names = {alias.asname or alias.name for _, node in exports for alias in node.names}
    skip = {config, *component.files, *(t.path for t in component.tests), *(p for p, _ in exports)}
    users = {n: u for n, u in _word_users(files, names, skip).items() if u}
    if users:
        name, where = next(iter(sorted(users.items())))
        plan.kept.append(f"{config}: kept, with its export in {exports[0][0]}: {name} is used by "
                         f"{', '.join(where[:3])}")
        return
    importing = {p for p in importers(files, config) if p not in skip}
    if importing:
        plan.kept.append(f"{config}: kept: imported by {', '.join(sorted(importing)[:3])}")
        return
    for init, node in exports:
        plan.edited[init] = _drop_export(plan.edited.get(init) or files.read(init) or "", node)
    plan.removed.append(config)


# ----- commits in the suite repository -----------------------------------------------------------


def init_suite_repo(repo: Path, checkout: Path) -> None:
    """A bare repository that borrows the checkout's objects (git alternates): nothing is copied
    and nothing in the checkout is written."""
    git(repo.parent, "init", "-q", "--bare", str(repo))
    objects = Path(git(checkout, "rev-parse", "--git-path", "objects").strip())
    objects = objects if objects.is_absolute() else (Path(checkout) / objects)
    (repo / "objects" / "info" / "alternates").write_text(f"{objects.resolve()}\n")


def write_base(repo: Path, files: CommitFiles, plan: Removal, added: dict[str, str], branch: str,
               message: str) -> str:
    """Commit the checkout commit's tree without the removed and absent files, with the edits
    and added files, as a parentless commit on `branch` of the suite repo; returns its hash."""
    with tempfile.TemporaryDirectory() as tmp:
        # A private index, and an empty work tree that nothing here writes (update-index wants one).
        (Path(tmp) / "tree").mkdir()
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), "GIT_WORK_TREE": str(Path(tmp) / "tree"), **BASE_AUTHOR}
        _git_env(repo, env, "read-tree", files.commit)
        gone = [p for p in (*plan.removed, *files.missing_blobs()) if p in files.entries]
        if gone:
            _git_env(repo, env, "update-index", "--force-remove", "--", *gone)
        for path, text in {**plan.edited, **added}.items():
            sha = _git_env(repo, env, "hash-object", "-w", "--stdin", input=text).strip()
            mode = files.entries.get(path, ("100644", ""))[0]
            _git_env(repo, env, "update-index", "--add", "--cacheinfo", f"{mode},{sha},{path}")
        tree = _git_env(repo, env, "write-tree").strip()
        commit = _git_env(repo, env, "commit-tree", tree, "-m", message).strip()
    git(repo, "update-ref", f"refs/heads/{branch}", commit)
    return commit


def _git_env(repo: Path, env: dict[str, str], *args: str, input: str | None = None) -> str:
    import subprocess

    from harness.sandbox.host_git import git_argv, host_env

    full = host_env(env)
    result = subprocess.run(git_argv(*args), cwd=repo, env=full, input=input, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed in {repo}: {result.stderr.strip()[-500:]}")
    return result.stdout


def gold_patch(repo: Path, base: str, original: str, paths: list[str]) -> str:
    """The diff that restores the removed and edited files: the gold."""
    return git(repo, "diff", "--no-ext-diff", "--no-textconv", "--binary", "--no-color", "--no-renames", base, original, "--", *paths)
