"""The run's workspace: a git worktree of the user's checkout on its own branch.

The user's working tree is never written: the harness works in
`$HARNESS_HOME/worktrees/<run_id>` on branch `harness/<run_id>`, started from the commit
that was HEAD when the run began (the base). Every agent step ends with `checkpoint()`, a
commit made from the host with hooks disabled, so a killed run loses nothing.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

import git

log = logging.getLogger(__name__)

HARNESS_AUTHOR_NAME = "fastvideo-harness"
HARNESS_AUTHOR_EMAIL = "harness@fastvideo-harness.invalid"

# Set as environment variables, which win over any identity in the user's config or env.
_IDENTITY = {"GIT_AUTHOR_NAME": HARNESS_AUTHOR_NAME, "GIT_AUTHOR_EMAIL": HARNESS_AUTHOR_EMAIL,
             "GIT_COMMITTER_NAME": HARNESS_AUTHOR_NAME, "GIT_COMMITTER_EMAIL": HARNESS_AUTHOR_EMAIL}

# A run id becomes a branch name and a directory name, so keep it boring.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# Files that tools leave behind and that must never land in a checkpoint.
_HARNESS_EXCLUDES = "__pycache__/\n*.pyc\n.pytest_cache/\n"

# FastVideo keeps converted and official weights out of git, so a new worktree lacks them; the
# sandboxes mount the checkout's own folders read-only in their place (see local_assets()).
LOCAL_ASSET_DIRS = ("converted_weights", "official_weights")


class WorkspaceError(Exception):
    """The workspace cannot be made, opened or used (the message says why)."""


class PathEscapeError(WorkspaceError):
    """A path leads outside what the agent may read or write."""


def harness_home(root: str | os.PathLike[str] | None = None) -> Path:
    """The harness's state dir: `root`, else `$HARNESS_HOME`, else `./.harness`."""
    return Path(root or os.environ.get("HARNESS_HOME") or ".harness").expanduser().resolve()


def _check_run_id(run_id: str) -> None:
    if not _RUN_ID.match(run_id) or ".." in run_id or run_id.endswith((".lock", ".")):
        raise WorkspaceError(
            f"invalid run id {run_id!r}: use letters, digits, '.', '_' or '-' "
            "(at most 100 characters, not starting with a symbol)"
        )


def _open_repo(repo: str | os.PathLike[str]) -> git.Repo:
    path = Path(repo).expanduser()
    if not path.is_dir():
        raise WorkspaceError(f"checkout {str(path)!r} does not exist or is not a directory")
    try:
        r = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise WorkspaceError(f"{str(path)!r} is not the top of a git checkout") from None
    if r.bare:
        raise WorkspaceError(f"{str(path)!r} is a bare repository; pass a checkout with a working tree")
    return r


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


class Workspace:
    """A git worktree on branch `harness/<run_id>`; see the module docstring."""

    def __init__(
        self,
        repo: Path,
        run_id: str,
        path: Path,
        base_commit: str,
        official_ref_dir: Path | None = None,
        notices: list[str] | None = None,
    ) -> None:
        self.repo = repo
        self.run_id = run_id
        self.path = path
        self.branch = f"harness/{run_id}"
        self.base_commit = base_commit
        self.official_ref_dir = official_ref_dir
        self.notices: list[str] = notices or []
        self._gitfile = _checked_gitfile(repo, path)
        self._git = git.Repo(path).git

    # ----- making and reopening -------------------------------------------------------

    @classmethod
    def create(
        cls,
        repo: str | os.PathLike[str],
        run_id: str,
        official_ref_dir: str | os.PathLike[str] | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> "Workspace":
        """Add a worktree for `run_id` from the checkout's HEAD (uncommitted changes are left out)."""
        _check_run_id(run_id)
        user = _open_repo(repo)
        top = Path(user.working_tree_dir).resolve()
        try:
            base = user.head.commit.hexsha
        except ValueError:
            raise WorkspaceError(f"checkout {str(top)!r} has no commits yet; commit once first") from None
        home = harness_home(root)
        dest = home / "worktrees" / run_id
        branch = f"harness/{run_id}"
        if dest.exists():
            raise WorkspaceError(f"workspace {dest} already exists; use Workspace.open() to resume run {run_id!r}")
        if _branch_exists(user, branch):
            raise WorkspaceError(f"branch {branch!r} already exists in {top}; pick another run id or remove it")
        official = Path(official_ref_dir).expanduser().resolve() if official_ref_dir else None
        if official is not None and not official.is_dir():
            raise WorkspaceError(f"official reference dir {str(official)!r} does not exist")

        notices = []
        if user.is_dirty(untracked_files=True):
            notices.append(
                f"the checkout {top} has uncommitted changes; the workspace starts from HEAD "
                f"{base[:12]} and does not include them"
            )
            log.warning(notices[-1])
        dest.parent.mkdir(parents=True, exist_ok=True)
        _exclude_home_from(user, top, home)
        # The record goes first: a worktree that exists always has one for open().
        _write_meta(home, run_id, {"repo": str(top), "base_commit": base,
                                   "official_ref_dir": str(official) if official else None})
        try:
            # No hooks: the user's post-checkout hook is not the harness's business.
            user.git.execute(["git", "-c", "core.hooksPath=/dev/null", "worktree", "add", "-q",
                              "-b", branch, str(dest), base])
        except git.GitCommandError as exc:
            (home / "worktrees" / f"{run_id}.json").unlink(missing_ok=True)
            raise WorkspaceError(f"git worktree add failed: {exc.stderr.strip()}") from None
        return cls(top, run_id, dest, base, official, notices)

    @classmethod
    def open(
        cls,
        repo: str | os.PathLike[str],
        run_id: str,
        root: str | os.PathLike[str] | None = None,
        official_ref_dir: str | os.PathLike[str] | None = None,
    ) -> "Workspace":
        """Reopen the worktree of an existing run (for resume)."""
        _check_run_id(run_id)
        top = Path(_open_repo(repo).working_tree_dir).resolve()
        home = harness_home(root)
        dest = home / "worktrees" / run_id
        meta_path = home / "worktrees" / f"{run_id}.json"
        if not (dest / ".git").is_file() or not meta_path.is_file():
            raise WorkspaceError(f"no workspace for run {run_id!r} under {home / 'worktrees'}")
        meta = json.loads(meta_path.read_text())
        if Path(meta["repo"]) != top:
            raise WorkspaceError(f"run {run_id!r} was made from {meta['repo']}, not from {top}")
        official = official_ref_dir or meta.get("official_ref_dir")
        return cls(top, run_id, dest, meta["base_commit"],
                   Path(official).resolve() if official else None)

    # ----- git ------------------------------------------------------------------------

    def _host_git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run git in the worktree from the host: no hooks, no signing, harness identity."""
        self._check_gitfile()
        excludes = self._excludes_file()
        return self._git.execute(
            ["git", "-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false",
             "-c", f"core.excludesFile={excludes}", *args],
            env={**_IDENTITY, **(env or {})}, strip_newline_in_stdout=False,
        )

    def _check_gitfile(self) -> None:
        # The `.git` file tells git where the metadata is; a rewritten one could point the
        # host's git at something the agent prepared, so refuse to go on.
        if (self.path / ".git").read_text() != self._gitfile:
            raise WorkspaceError(f"{self.path / '.git'} was modified; refusing to run git in this workspace")

    def _excludes_file(self) -> Path:
        path = self.path.parent / ".harness-excludes"
        if not path.exists():
            path.write_text(_HARNESS_EXCLUDES)
        return path

    def _snapshot_tree(self) -> str:
        """The tree of the worktree as it is now (tracked + untracked), via a scratch index."""
        real_index = Path(self._host_git("rev-parse", "--path-format=absolute", "--git-path", "index").strip())
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if real_index.exists():
                # A copy keeps git's stat cache, so only changed files are hashed again.
                shutil.copyfile(real_index, env["GIT_INDEX_FILE"])
            else:
                self._host_git("read-tree", "HEAD", env=env)
            self._host_git("add", "-A", env=env)
            return self._host_git("write-tree", env=env).strip()

    def checkpoint(self, message: str) -> str | None:
        """Commit everything changed; the new commit's sha, or None when nothing changed."""
        if not message.strip():
            raise WorkspaceError("a checkpoint needs a non-empty message")
        self._host_git("add", "-A")
        try:
            self._host_git("diff", "--cached", "--quiet")
            return None
        except git.GitCommandError as err:
            if err.status != 1:
                raise
        self._host_git("commit", "--no-verify", "-q", "-m", message)
        return self.head()

    def head(self) -> str:
        return self._host_git("rev-parse", "HEAD").strip()

    def diff(self, path: str | None = None) -> str:
        """Unified diff from the base commit to the worktree as it is now."""
        args = ["diff", self.base_commit, self._snapshot_tree()]
        if path is not None:
            args += ["--", self._relative(path)]
        return self._host_git(*args)

    def files_changed(self) -> list[str]:
        """Paths added, modified or deleted since the base commit, sorted."""
        out = self._host_git("diff", "--name-only", "--no-renames", self.base_commit, self._snapshot_tree())
        return sorted(line for line in out.splitlines() if line)

    def local_assets(self) -> list[tuple[str, Path]]:
        """(name, folder in the user's checkout) for each git-ignored weights folder the
        worktree lacks; executors mount them read-only at that name in the workspace."""
        assets = []
        for name in LOCAL_ASSET_DIRS:
            source, here = self.repo / name, self.path / name
            if not source.is_dir() or (here.exists() and any(here.iterdir())):
                continue
            try:
                git.Repo(self.repo).git.check_ignore("-q", name)
            except git.GitCommandError:
                continue  # not ignored: tracked content is in the worktree already
            assets.append((name, source.resolve()))
        return assets

    def file_at_base(self, rel: str) -> str | None:
        """The text of `rel` at the base commit, or None if it did not exist there."""
        try:
            return self._host_git("show", f"{self.base_commit}:{self._relative(rel)}")
        except git.GitCommandError:
            return None

    def remove(self, delete_branch: bool = False) -> None:
        """Remove the worktree (and its branch when asked); the user's checkout is untouched."""
        user = git.Repo(self.repo)
        if self.path.exists():
            user.git.worktree("remove", "--force", str(self.path))
        user.git.worktree("prune")
        if delete_branch and _branch_exists(user, self.branch):
            user.git.branch("-D", self.branch)
        meta = self.path.parent / f"{self.run_id}.json"
        meta.unlink(missing_ok=True)

    # ----- paths ----------------------------------------------------------------------

    def _relative(self, rel: str) -> str:
        """`rel` as a worktree-relative posix path, checked like `resolve`."""
        return self.resolve(rel).relative_to(self.path.resolve()).as_posix()

    def resolve(self, rel: str | os.PathLike[str], write: bool = False) -> Path:
        """The real path for `rel`: inside the worktree, or (read-only) inside the official ref dir.

        Refused with PathEscapeError: `..` components, absolute paths elsewhere, symlinks
        that lead outside, and any write to `.git` or to the official reference dir.
        """
        raw = Path(rel)
        text = str(rel)
        if text.strip() == "":
            raise PathEscapeError("empty path")
        if ".." in raw.parts:
            raise PathEscapeError(f"path {text!r} contains '..'; give a path relative to the workspace root")
        root = self.path.resolve()
        official = self.official_ref_dir.resolve() if self.official_ref_dir else None
        raw = _from_sandbox_path(raw, root, official)
        candidate = raw if raw.is_absolute() else root / raw
        real = Path(os.path.realpath(candidate))
        if _is_within(real, root):
            inside_git = real.relative_to(root).parts[:1] == (".git",)
            if write and (inside_git or raw.parts[:1] == (".git",)):
                raise PathEscapeError(f"path {text!r} is git metadata; it cannot be written")
            if write and real == root:
                raise PathEscapeError(f"path {text!r} is the workspace root itself, not a file")
            return real
        if official is not None and _is_within(real, official):
            if write:
                raise PathEscapeError(f"path {text!r} is in the official reference dir, which is read-only")
            return real
        where = "an absolute path outside the workspace" if raw.is_absolute() else "a symlink that leads outside the workspace"
        allowed = f" or inside the official reference dir {official}" if official else ""
        raise PathEscapeError(f"path {text!r} is {where} ({real}); paths must stay inside the workspace{allowed}")


# Where the docker sandbox mounts the worktree and the official reference dir; agents see
# these paths in tracebacks and may hand them back.
SANDBOX_WORKDIR = PurePosixPath("/workspace")
SANDBOX_OFFICIAL_DIR = PurePosixPath("/official")


def _from_sandbox_path(raw: Path, root: Path, official: Path | None) -> Path:
    """`/workspace/x` -> `<worktree>/x` and `/official/x` -> `<official_ref_dir>/x`."""
    posix = PurePosixPath(raw.as_posix())
    for alias, real in ((SANDBOX_WORKDIR, root), (SANDBOX_OFFICIAL_DIR, official)):
        if real is not None and posix.is_relative_to(alias) and not real.is_relative_to(Path(alias)):
            return real / posix.relative_to(alias)
    return raw


def _checked_gitfile(repo: Path, path: Path) -> str:
    """The worktree's `.git` pointer, after checking it leads into the checkout's own git dir."""
    text = (path / ".git").read_text()
    target = Path(text.removeprefix("gitdir:").strip())
    common = Path(git.Repo(repo).common_dir).resolve()
    if not text.startswith("gitdir:") or not _is_within(target.resolve(), common / "worktrees"):
        raise WorkspaceError(f"{path / '.git'} does not point into {common / 'worktrees'}; refusing to use it")
    return text


def _branch_exists(repo: git.Repo, branch: str) -> bool:
    try:
        repo.git.rev_parse("--verify", "--quiet", f"refs/heads/{branch}")
        return True
    except git.GitCommandError:
        return False


def _write_meta(home: Path, run_id: str, meta: dict) -> None:
    path = home / "worktrees" / f"{run_id}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(path)


def _exclude_home_from(user: git.Repo, top: Path, home: Path) -> None:
    """If the harness dir lies inside the checkout, hide it from the user's `git status`."""
    if not _is_within(home, top) or home == top:
        return
    pattern = "/" + home.relative_to(top).as_posix() + "/"
    exclude = Path(user.common_dir) / "info" / "exclude"
    if exclude.exists() and pattern in exclude.read_text().splitlines():
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    with exclude.open("a") as f:
        f.write(f"\n# fastvideo-harness worktrees and runs\n{pattern}\n")


def owner_of(path: Path) -> tuple[int, int]:
    """uid and gid owning `path` (the sandbox runs commands as them)."""
    st = path.stat()
    return st.st_uid, st.st_gid


__all__ = ["Workspace", "WorkspaceError", "PathEscapeError", "harness_home", "owner_of"]
