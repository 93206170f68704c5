"""`harness clean`: remove a run's worktree and `harness/<run_id>` branch from the user's checkout.

The run directory (summary, handoff, logs, trajectory) stays, so `harness runs` and `harness
show` still describe the run. A paused run is waiting for an answer, a suspended one for its
fault to be fixed; either is only cleaned with `force`. A run another process is driving is never touched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import git

from harness.graph.checkpoint import RunBusyError, run_lock
from harness.run_config.config import harness_home, run_dir as run_dir_for, runs_dir

# Runs that ended with a handoff; `clean --finished` removes these.
FINISHED = ("completed", "blocked")


class CleanError(RuntimeError):
    """The run cannot be cleaned (unknown, paused without --force, being driven)."""


def clean_run(run_id: str, home: Path | None = None, *, force: bool = False) -> list[str]:
    """Remove the run's worktree and branch; returns one line per thing removed."""
    try:
        rdir = run_dir_for(run_id, home)
    except ValueError as err:
        raise CleanError(str(err)) from None
    meta = _read_json(rdir / "run.json")
    if meta is None:
        raise CleanError(f"no run {run_id!r} under {runs_dir(home)}")
    status = (_read_json(rdir / "summary.json") or {}).get("status")
    if status == "paused" and not force:
        raise CleanError(f"run {run_id} is paused on a question; answer it, or pass --force to remove it anyway")
    if status == "suspended" and not force:
        raise CleanError(f"run {run_id} was suspended by an infrastructure fault; `harness resume {run_id}` "
                         "continues it, or pass --force to remove it anyway")
    try:
        with run_lock(rdir):
            return _remove_worktree_and_branch(Path(meta["config"]["repo"]), run_id, harness_home(home))
    except RunBusyError:
        raise CleanError(f"run {run_id} is being driven by another process; stop it first") from None


def finished_runs(home: Path | None = None) -> list[str]:
    root = runs_dir(home)
    ids = []
    for rdir in sorted(root.iterdir()) if root.is_dir() else []:
        if (_read_json(rdir / "summary.json") or {}).get("status") in FINISHED:
            ids.append(rdir.name)
    return ids


def _remove_worktree_and_branch(repo: Path, run_id: str, home: Path) -> list[str]:
    from harness.sandbox.host_git import run_git

    removed: list[str] = []
    worktree = home / "worktrees" / run_id
    try:
        user = git.Repo(repo)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        user = None  # the checkout is gone; only the harness's own folder is left to remove
    top = user.working_tree_dir if user is not None else None
    if user is not None and worktree.exists():
        run_git(top, "worktree", "remove", "--force", str(worktree))
        removed.append(f"worktree {worktree}")
    elif worktree.exists():
        shutil.rmtree(worktree)
        removed.append(f"worktree {worktree}")
    if user is not None:
        run_git(top, "worktree", "prune")
        branch = f"harness/{run_id}"
        try:
            tip = run_git(top, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}").strip()
        except git.GitCommandError:
            tip = ""
        if tip:
            run_git(top, "branch", "-D", branch)
            # The tip is printed so the port can still be recovered (`git branch NAME <tip>`).
            removed.append(f"branch {branch} (was {tip[:12]}) in {repo}")
    (home / "worktrees" / f"{run_id}.json").unlink(missing_ok=True)
    return removed


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
