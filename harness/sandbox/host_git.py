"""The one way the harness runs git on the host, in a worktree or the user's checkout.

An agent writes the worktree, so nothing in it may make the host run a command or read a
rewritten history. Every call therefore runs without optional locks (no index refreshed as a
side effect of reading), with no system or global config, fsmonitor,
hooks, untracked cache, signing and the file protocol off, replace refs ignored, and the
filter/diff/merge drivers that any `.gitattributes` in the tree names switched off. And git
never walks a worktree at all: `scan_tree` lists it from disk (a nested repository is never
entered, oversized files are left out), and `write_tree` stores that listing's blobs without
filters, so what git sees is exactly the listing.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import git

from harness.sandbox.executors.limits import DEFAULT_MAX_FILE_MB

__all__ = ["DEFAULT_MAX_FILE_MB", "run_git", "scan_tree", "BlobStore", "TreeScan", "host_env", "git_argv"]

HARDENED_CONFIG = (
    "core.fsmonitor=false",
    "core.hooksPath=/dev/null",
    "core.attributesFile=/dev/null",
    "core.untrackedCache=false",
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    "protocol.file.allow=never",
    "submodule.recurse=false",
    "diff.external=",
    "gc.auto=0",
    "maintenance.auto=false",
)
HARDENED_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "GIT_NO_REPLACE_OBJECTS": "1",
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
}
# Directories that tools leave behind and a checkpoint never takes (nor does a diff show them).
BYPRODUCT_DIRS = frozenset({"__pycache__", ".pytest_cache"})
BYPRODUCT_SUFFIXES = (".pyc", ".pyo")

_DRIVER = re.compile(r"(?:^|\s)(filter|diff|merge)=([^\s]+)")


def host_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The host's environment without any GIT_* variable (an outer GIT_DIR or GIT_CONFIG_*
    must not redirect us), plus the hardened settings and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HARDENED_ENV)
    env.update(extra or {})
    return env


def git_argv(*args: str, drivers: tuple[str, ...] = (), config: tuple[str, ...] = (),
             safe_dirs: tuple[str, ...] = ()) -> list[str]:
    """`git` with the hardened `-c` options, the named attribute drivers switched off, then
    the caller's `config` (which may relax one for one call) and `args`."""
    # --no-optional-locks: reading commands (status, diff) never refresh and rewrite an index,
    # so the user's .git/index is never written behind their back.
    argv = ["git", "--no-optional-locks"]
    for item in HARDENED_CONFIG:
        argv += ["-c", item]
    for name in drivers:
        for key in (f"filter.{name}.clean", f"filter.{name}.smudge", f"filter.{name}.process",
                    f"diff.{name}.textconv", f"diff.{name}.command", f"merge.{name}.driver"):
            argv += ["-c", f"{key}="]
        argv += ["-c", f"filter.{name}.required=false"]
    for path in safe_dirs:
        # Global config is off, so a user's own safe.directory entries would be lost.
        argv += ["-c", f"safe.directory={path}"]
    for item in config:
        argv += ["-c", item]
    return argv + list(args)


def run_git(cwd: str | os.PathLike[str], *args: str, env: dict[str, str] | None = None,
            input: bytes | str | None = None, drivers: tuple[str, ...] = (),
            config: tuple[str, ...] = (), check: bool = True) -> str:
    """Run hardened git in `cwd`; stdout as text. Raises git.GitCommandError like GitPython."""
    cwd = str(cwd)
    argv = git_argv(*args, drivers=drivers, config=config, safe_dirs=(cwd,))
    data = input.encode("utf-8", "surrogateescape") if isinstance(input, str) else input  # odd file names
    proc = subprocess.run(argv, cwd=cwd, env=host_env(env), input=data, capture_output=True)
    out = proc.stdout.decode("utf-8", "surrogateescape")
    if check and proc.returncode != 0:
        raise git.GitCommandError(argv, proc.returncode, proc.stderr.decode("utf-8", "replace"), out)
    return out


# ----- the worktree as a listing from disk -------------------------------------------------


@dataclass
class TreeScan:
    """What a checkpoint may take from a worktree, and what it must refuse."""

    entries: dict[str, tuple[str, Path]] = field(default_factory=dict)  # rel -> (git mode, path)
    nested_repos: list[str] = field(default_factory=list)  # dirs holding a `.git`: never entered
    too_large: list[tuple[str, int]] = field(default_factory=list)  # (rel, bytes)
    drivers: set[str] = field(default_factory=set)  # filter/diff/merge names in any .gitattributes
    attributes: list[str] = field(default_factory=list)  # rel paths of .gitattributes files
    gitlinks: dict[str, str] = field(default_factory=dict)  # rel -> commit: submodules kept as the base has them


def is_byproduct(rel: str) -> bool:
    parts = rel.split("/")
    return bool(BYPRODUCT_DIRS.intersection(parts)) or rel.endswith(BYPRODUCT_SUFFIXES)


def scan_tree(root: Path, max_file_bytes: int, skip_top: frozenset[str] = frozenset()) -> TreeScan:
    """List `root` from disk without following links: regular files, executables and symlinks
    with their git modes. The top `.git` pointer, byproducts, `skip_top` names, special files,
    nested repositories and files over `max_file_bytes` stay out (the last two are reported)."""
    scan = TreeScan()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        rel_dir = "" if here == root else here.relative_to(root).as_posix()
        if rel_dir and (".git" in dirnames or ".git" in filenames):
            scan.nested_repos.append(rel_dir)
            dirnames[:] = []
            continue
        keep = []
        for d in sorted(dirnames):
            rel = f"{rel_dir}/{d}" if rel_dir else d
            if d in BYPRODUCT_DIRS or (not rel_dir and (d == ".git" or d in skip_top)):
                continue
            if (here / d).is_symlink():
                scan.entries[rel] = ("120000", here / d)  # a link to a dir: stored as the link
                continue
            keep.append(d)
        dirnames[:] = keep
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if not rel_dir and (name == ".git" or name in skip_top):
                continue
            if name.endswith(BYPRODUCT_SUFFIXES):
                continue
            path = here / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                scan.entries[rel] = ("120000", path)
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > max_file_bytes:
                    scan.too_large.append((rel, st.st_size))
                    continue
                scan.entries[rel] = ("100755" if st.st_mode & stat.S_IXUSR else "100644", path)
                if name == ".gitattributes":
                    scan.attributes.append(rel)
                    scan.drivers.update(m.group(2) for m in _DRIVER.finditer(path.read_text(errors="replace")))
    scan.nested_repos.sort()
    return scan


def _safe_driver_name(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z0-9._-]+", name))


class BlobStore:
    """Writes the blobs of a listing into a repository's object store, without filters, and
    remembers them by (size, mtime, inode, mode) so unchanged files are not hashed again."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self._known: dict[str, tuple[tuple[int, int, int, int], str]] = {}

    def write_tree(self, scan: TreeScan, env: dict[str, str] | None = None) -> str:
        """The tree object of `scan`, built in a scratch index (the real one is not touched)."""
        shas: dict[str, str] = {}
        todo: list[str] = []
        for rel, (_, path) in scan.entries.items():
            st = path.lstat()
            key = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_mode)
            known = self._known.get(rel)
            if known and known[0] == key:
                shas[rel] = known[1]
            else:
                todo.append(rel)
                self._known[rel] = (key, "")
        with tempfile.TemporaryDirectory(prefix="fastvideo-harness-git-") as tmp:
            plain = [rel for rel in todo if scan.entries[rel][0] != "120000" and "\n" not in rel]
            odd = [rel for rel in todo if rel not in plain]
            if plain:
                out = run_git(self.cwd, "hash-object", "-w", "--no-filters", "--stdin-paths",
                              input="".join(f"{scan.entries[rel][1]}\n" for rel in plain), env=env)
                shas.update(zip(plain, out.split()))
            for rel in odd:  # symlinks (the blob is the target) and names git cannot take per line
                mode, path = scan.entries[rel]
                data = os.fsencode(os.readlink(path)) if mode == "120000" else path.read_bytes()
                shas[rel] = run_git(self.cwd, "hash-object", "-w", "--no-filters", "--stdin",
                                    input=data, env=env).strip()
            for rel in todo:
                self._known[rel] = (self._known[rel][0], shas[rel])
            index_env = {**(env or {}), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            records = "".join(f"{scan.entries[rel][0]} {shas[rel]}\t{rel}\0" for rel in sorted(scan.entries))
            records += "".join(f"160000 {sha}\t{rel}\0" for rel, sha in sorted(scan.gitlinks.items()))
            run_git(self.cwd, "update-index", "-z", "--index-info", input=records.encode("utf-8", "surrogateescape"),
                    env=index_env)
            return run_git(self.cwd, "write-tree", env=index_env).strip()


def tree_drivers(scan: TreeScan) -> tuple[str, ...]:
    """The driver names to switch off for calls on this tree. Names that cannot be spelled in
    `-c` are dropped; the snapshot and diff calls use no drivers at all in any case."""
    return tuple(sorted(n for n in scan.drivers if _safe_driver_name(n)))
