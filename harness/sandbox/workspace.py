"""The run's workspace: a git worktree of the user's checkout on its own branch.

The user's working tree is never written: the harness works in
`$HARNESS_HOME/worktrees/<run_id>` on branch `harness/<run_id>`, started from the commit
that was HEAD when the run began (the base). Every agent step ends with `checkpoint()`, a
commit made from the host, so a killed run loses nothing. All git calls go through
`host_git` (hardened; git never walks the worktree: snapshots come from a disk listing).
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

from harness.sandbox.host_git import (
    DEFAULT_MAX_FILE_MB,
    BlobStore,
    TreeScan,
    run_git,
    scan_tree,
    tree_drivers,
)
from harness.sandbox.tree_watch import TreeWatch, start_watch

log = logging.getLogger(__name__)

HARNESS_AUTHOR_NAME = "fastvideo-harness"
HARNESS_AUTHOR_EMAIL = "harness@fastvideo-harness.invalid"

# Set as environment variables, which win over any identity in the user's config or env.
_IDENTITY = {"GIT_AUTHOR_NAME": HARNESS_AUTHOR_NAME, "GIT_AUTHOR_EMAIL": HARNESS_AUTHOR_EMAIL,
             "GIT_COMMITTER_NAME": HARNESS_AUTHOR_NAME, "GIT_COMMITTER_EMAIL": HARNESS_AUTHOR_EMAIL}

# A run id becomes a branch name and a directory name, so keep it boring.
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")

# FastVideo keeps converted and official weights out of git, so a new worktree lacks them; the
# sandboxes mount the checkout's own folders read-only in their place (see local_assets()).
LOCAL_ASSET_DIRS = ("converted_weights", "official_weights")
# The agents' scratch folder ($SCRATCH_DIR): files that outlive one command. It is the agents'
# working notes, never the port: checkpoints, diffs and the branch leave it out, and the
# clean-room verdict never copies it.
SCRATCH_DIR = ".harness-scratch"
PRIVATE_DIRS = frozenset({SCRATCH_DIR})


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
        self.max_file_bytes = DEFAULT_MAX_FILE_MB * 1024 * 1024
        self._blobs = BlobStore(path)
        self._watch: TreeWatch | None = None
        self._snapshot: tuple[int, str] | None = None  # (max_file_bytes, tree) of the last listing

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
        if run_git(top, "status", "--porcelain", "--untracked-files=normal", "--ignore-submodules=all").strip():
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
            run_git(top, "worktree", "add", "-q", "-b", branch, str(dest), base)
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
        """Hardened git in the worktree (see host_git), with the harness's identity."""
        self._check_gitfile()
        return run_git(self.path, *args, env={**_IDENTITY, **(env or {})}, drivers=self._drivers)

    _drivers: tuple[str, ...] = ()

    def _check_gitfile(self) -> None:
        # The `.git` file tells git where the metadata is; a rewritten one (or a `.git` dir or
        # link in its place) could point the host's git at a config the agent wrote. Put the
        # harness's own pointer back before any git call, and record it as a blocking finding.
        gitfile = self.path / ".git"
        if not gitfile.is_symlink() and gitfile.is_file() and gitfile.read_text(errors="replace") == self._gitfile:
            return
        what = ("a symlink" if gitfile.is_symlink() else "a directory" if gitfile.is_dir()
                else "missing" if not gitfile.exists() else "rewritten")
        if gitfile.is_dir() and not gitfile.is_symlink():
            shutil.rmtree(gitfile)
        elif gitfile.exists() or gitfile.is_symlink():
            gitfile.unlink()
        gitfile.write_text(self._gitfile)
        log.warning("the worktree's .git pointer was %s; restored it", what)
        with self._tamper_log.open("a") as f:
            f.write(f"the worktree's `.git` pointer was {what}; the harness restored its own\n")

    @property
    def _tamper_log(self) -> Path:
        return self.path.parent / f"{self.run_id}.git-pointer-restored"

    def scan(self) -> TreeScan:
        """The worktree listed from disk, as a checkpoint takes it (see host_git.scan_tree), the
        scratch folder left out. A submodule of the base that the worktree holds as an empty folder
        (git worktrees do not check submodules out) stays the base's submodule, not a deleted path."""
        scan = scan_tree(self.path.resolve(), self.max_file_bytes, skip_top=PRIVATE_DIRS)
        self._drivers = tree_drivers(scan)
        for rel, sha in self._base_gitlinks().items():
            folder = self.path / rel
            if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
                scan.gitlinks[rel] = sha
        return scan

    def _base_gitlinks(self) -> dict[str, str]:
        cached = getattr(self, "_gitlinks", None)
        if cached is None or cached[0] != self.base_commit:
            out = self._host_git("ls-tree", "-r", "-z", self.base_commit)
            links = {}
            for entry in out.split("\0"):
                meta, _, rel = entry.partition("\t")
                if meta.startswith("160000 "):
                    links[rel] = meta.split()[2]
            cached = self._gitlinks = (self.base_commit, links)
        return cached[1]

    def host_findings(self) -> list[tuple[str, str]]:
        """(path, why) for what a checkpoint refuses: nested repositories, files over the size
        limit, and `.gitattributes` changed since the base that name filter/diff/merge drivers."""
        self._check_gitfile()
        scan = self.scan()
        found = [(".git", line) for line in sorted(set(self._tamper_log.read_text().splitlines()))
                 ] if self._tamper_log.exists() else []
        found += [(rel, "a nested git repository (a `.git` inside the worktree): the host never runs git "
                       "in it and the checkpoint leaves the folder out; remove the `.git` entry")
                 for rel in scan.nested_repos]
        limit_mb = self.max_file_bytes / (1024 * 1024)
        found += [(rel, f"{size / (1024 * 1024):.1f} MB is over the {limit_mb:g} MB limit for one file "
                        "(--max-file-mb); the checkpoint leaves it out")
                  for rel, size in scan.too_large]
        for rel in scan.attributes:
            now = (self.path / rel).read_text(errors="replace")
            if now != self.file_at_base(rel) and any(w in now for w in ("filter=", "diff=", "merge=")):
                found.append((rel, "names a filter/diff/merge driver; git attributes from the worktree are "
                                   "never applied on the host"))
        return found

    def watch(self) -> TreeWatch | None:
        """Have the kernel tell this object what changes in the worktree (idempotent; None where
        it cannot): from then on a checkpoint or a listing after a step that changed nothing
        costs no walk of the tree and no git call."""
        if self._watch is None:
            self._watch = start_watch(self.path)
        return self._watch

    def _unchanged_since_last(self, consumer: str) -> bool:
        return self._watch is not None and self._watch.changes(consumer) == set()

    def _snapshot_tree(self) -> str:
        """The tree of the worktree as it is now, from the disk listing (ignored files included)."""
        if (self._unchanged_since_last("snapshot") and self._snapshot is not None
                and self._snapshot[0] == self.max_file_bytes):
            return self._snapshot[1]
        self._snapshot = None  # until this listing completes
        scan = self.scan()
        self._check_gitfile()
        tree = self._blobs.write_tree(scan)
        self._snapshot = (self.max_file_bytes, tree)
        return tree

    def checkpoint(self, message: str) -> str | None:
        """Commit everything changed; the new commit's sha, or None when nothing changed."""
        if not message.strip():
            raise WorkspaceError("a checkpoint needs a non-empty message")
        if self._unchanged_since_last("checkpoint"):
            # Every commit on the branch is a listing of this disk, and the disk has not
            # changed since this object's last checkpoint looked at it.
            return None
        try:
            return self._commit_listing(message)
        except BaseException:
            if self._watch is not None:
                self._watch.forget("checkpoint")  # the next checkpoint looks again
            raise

    def _commit_listing(self, message: str) -> str | None:
        tree = self._snapshot_tree()
        head = self.head()
        if self._host_git("rev-parse", f"{head}^{{tree}}").strip() == tree:
            return None
        commit = self._host_git("commit-tree", tree, "-p", head, "-m", message).strip()
        self._host_git("update-ref", "HEAD", commit, head)
        self._host_git("read-tree", tree)  # the worktree's index follows, for a person's `git status`
        return commit

    def head(self) -> str:
        return self._host_git("rev-parse", "HEAD").strip()

    def tree(self, commit: str = "HEAD") -> str:
        """The tree hash of a commit: equal trees hold exactly the same files."""
        return self._host_git("rev-parse", f"{commit}^{{tree}}").strip()

    def diff(self, path: str | None = None) -> str:
        """Unified diff from the base commit to the worktree as it is now."""
        args = ["diff", "--no-ext-diff", "--no-textconv", self.base_commit, self._snapshot_tree()]
        if path is not None:
            args += ["--", self._relative(path)]
        return self._host_git(*args)

    def files_changed(self) -> list[str]:
        """Paths added, modified or deleted since the base commit, sorted (git-ignored files
        included; nested repositories and oversized files are in `host_findings` instead)."""
        return self.changed_since(self.base_commit) or []

    def changed_since(self, commit: str) -> list[str] | None:
        """Paths that differ between `commit` and the worktree now; None for an unknown commit."""
        try:
            self._host_git("cat-file", "-e", f"{commit}^{{commit}}")
        except git.GitCommandError:
            return None
        out = self._host_git("diff", "--name-only", "--no-renames", "-z", commit, self._snapshot_tree())
        return sorted(p for p in out.split("\0") if p)

    def diff_between(self, before: str, after: str = "HEAD") -> str:
        """Unified diff between two commits of the run's branch."""
        return self._host_git("diff", "--no-ext-diff", "--no-textconv", before, after)

    def changed_between(self, before: str, after: str = "HEAD") -> list[str]:
        """Paths that differ between two commits of the run's branch."""
        out = self._host_git("diff", "--name-only", "--no-renames", "-z", before, after)
        return [p for p in out.split("\0") if p]

    def local_assets(self) -> list[tuple[str, Path]]:
        """(name, folder in the user's checkout) for each git-ignored weights folder the
        worktree lacks, and for the official reference when it is such a folder (a clone at
        the checkout root, where FastVideo's tests look by default); executors mount them
        read-only at that name in the workspace."""
        assets = []
        official = self._official_in_checkout()
        for name in (*LOCAL_ASSET_DIRS, *([official] if official else [])):
            source, here = self.repo / name, self.path / name
            if not source.is_dir() or (here.exists() and any(here.iterdir())):
                continue
            try:
                run_git(self.repo, "check-ignore", "-q", name)
            except git.GitCommandError:
                continue  # not ignored: tracked content is in the worktree already
            assets.append((name, source.resolve()))
        return assets

    def _official_in_checkout(self) -> str | None:
        """The official reference dir's checkout-relative path, when it lies in the checkout."""
        if self.official_ref_dir is None:
            return None
        try:
            rel = Path(self.official_ref_dir).resolve().relative_to(Path(self.repo).resolve())
        except ValueError:
            return None
        return rel.as_posix() if rel.parts and rel.parts[0] != ".git" else None

    def file_at_base(self, rel: str) -> str | None:
        """The text of `rel` at the base commit, or None if it did not exist there."""
        # The base is a commit, not the disk: a link the agent put at `rel` changes nothing here.
        posix = PurePosixPath(str(rel).replace(os.sep, "/"))
        if posix.is_absolute() or ".." in posix.parts or not posix.parts:
            posix = PurePosixPath(self._relative(str(rel)))
        try:
            return self._host_git("cat-file", "blob", f"{self.base_commit}:{posix.as_posix()}")
        except git.GitCommandError:
            return None

    def files_at_base(self) -> list[str]:
        """Every file path of the base commit (read by its hash, never through a ref)."""
        out = self._host_git("ls-tree", "-r", "-z", "--name-only", _commit_hash(self.base_commit),
                             env={"GIT_NO_REPLACE_OBJECTS": "1"})
        return [p for p in out.split("\0") if p]

    def export_commit(self, commit: str, dest: Path) -> None:
        """Write the files of `commit` (a full hash) into the empty folder `dest`: regular files
        and executables only; symlinks and submodules of the commit are left out."""
        import tarfile

        with tempfile.TemporaryDirectory() as tmp:
            archive = Path(tmp) / "tree.tar"
            self._host_git("archive", "--format=tar", "-o", str(archive), _commit_hash(commit),
                           env={"GIT_NO_REPLACE_OBJECTS": "1"})
            with tarfile.open(archive) as tar:
                members = [m for m in tar.getmembers() if m.isfile() or m.isdir()]
                tar.extractall(dest, members=members, filter="data")

    def remove(self, delete_branch: bool = False) -> None:
        """Remove the worktree (and its branch when asked); the user's checkout is untouched."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self.path.exists():
            run_git(self.repo, "worktree", "remove", "--force", str(self.path))
        run_git(self.repo, "worktree", "prune")
        if delete_branch and _branch_exists(git.Repo(self.repo), self.branch):
            run_git(self.repo, "branch", "-D", self.branch)
        meta = self.path.parent / f"{self.run_id}.json"
        meta.unlink(missing_ok=True)
        self._tamper_log.unlink(missing_ok=True)

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


def _commit_hash(commit: str) -> str:
    """A commit named by its full hash: a ref or a short name could have been moved."""
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit or ""):
        raise WorkspaceError(f"expected a full commit hash, got {commit!r}")
    return commit


def _checked_gitfile(repo: Path, path: Path) -> str:
    """The worktree's `.git` pointer as git wrote it: the file on disk when it leads into the
    checkout's own git dir, else the one its admin dir names (the first git call puts it back)."""
    gitfile = path / ".git"
    common = Path(git.Repo(repo).common_dir).resolve()
    if gitfile.is_file() and not gitfile.is_symlink():
        text = gitfile.read_text(errors="replace")
        target = Path(text.removeprefix("gitdir:").strip())
        if text.startswith("gitdir:") and _is_within(target.resolve(), common / "worktrees"):
            return text
    # Each worktree's admin dir records where its `.git` file lives: that link is the user's.
    admins = (common / "worktrees").iterdir() if (common / "worktrees").is_dir() else []
    for admin in admins:
        link = admin / "gitdir"
        if link.is_file() and Path(link.read_text().strip()) == gitfile:
            return f"gitdir: {admin}\n"
    raise WorkspaceError(f"{gitfile} does not point into {common / 'worktrees'} and no worktree of the "
                         "checkout lives here; refusing to use it")


def _branch_exists(repo: git.Repo, branch: str) -> bool:
    try:
        run_git(repo.working_tree_dir, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
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
