"""Which paths of a worktree changed since someone last asked, told by the kernel (inotify).

Asking costs next to nothing when nothing changed, so a checkpoint after a command that wrote
nothing, and the group sharing before the next command, skip their walk of the whole tree.
Every consumer (a name such as "checkpoint" or "share") gets every change once. When the
kernel cannot tell (no inotify, out of watches or instances, a lost event queue, the first
question of a consumer), the answer is None, "anything may have changed", and the caller walks
the tree as before: a watch can waste a walk, never miss a change.

What is seen: creations, deletions, renames, writes (also a writable file closed, so writes
through a shared mapping count), metadata changes, in every directory of the tree except the
byproduct ones a checkpoint leaves out (`__pycache__`, `.pytest_cache`, `*.pyc`). Inotify
watches inodes, so writes made through a bind mount (bwrap, docker) are seen as well.
"""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path

from harness.sandbox.host_git import is_byproduct

log = logging.getLogger(__name__)

try:
    from inotify_simple import INotify, flags
except ImportError:  # not Linux, or not installed: every question is answered "unknown"
    INotify = None  # type: ignore[assignment,misc]

if INotify is not None:
    _CHANGES = (flags.CREATE | flags.DELETE | flags.MODIFY | flags.CLOSE_WRITE | flags.ATTRIB
                | flags.MOVED_FROM | flags.MOVED_TO | flags.DELETE_SELF | flags.MOVE_SELF)
    _WATCH_MASK = _CHANGES | flags.ONLYDIR | flags.DONT_FOLLOW


class TreeWatch:
    """Watches every directory under `root`; `changes(consumer)` drains what happened."""

    def __init__(self, root: Path) -> None:
        if INotify is None:
            raise OSError(errno.ENOSYS, "inotify is not available")
        self.root = Path(root)
        self._inotify = INotify(nonblocking=True)
        self._dirs: dict[int, str] = {}  # watch descriptor -> directory, relative ("" is the root)
        self._pending: dict[str, set[str] | None] = {}  # consumer -> changed paths (None: unknown)
        self._broken = False
        self._add_tree("", report=False)

    def changes(self, consumer: str) -> set[str] | None:
        """Paths (relative to the root) created, changed or removed since `consumer` last
        asked; None when that cannot be known (then assume anything changed)."""
        self._drain()
        if self._broken or consumer not in self._pending:
            self._pending[consumer] = set()
            return None
        found = self._pending[consumer]
        self._pending[consumer] = set()
        return found

    def forget(self, consumer: str) -> None:
        """The consumer could not act on what it was told: its next answer is None."""
        self._pending[consumer] = None

    def close(self) -> None:
        self._broken = True
        self._inotify.close()

    # ----- internals ---------------------------------------------------------------------

    def _drain(self) -> None:
        if self._broken:
            return
        while True:
            events = self._inotify.read(timeout=0)
            if not events:
                return
            for event in events:
                self._handle(event)

    def _handle(self, event) -> None:  # noqa: ANN001 (inotify_simple.Event)
        if event.mask & flags.Q_OVERFLOW:
            # Events were lost, new directories among them perhaps: watch everything again,
            # and let every consumer walk once.
            self._unknown()
            self._add_tree("", report=False)
            return
        if event.mask & flags.IGNORED:
            self._dirs.pop(event.wd, None)
            return
        parent = self._dirs.get(event.wd)
        if parent is None:
            return
        if event.mask & (flags.DELETE_SELF | flags.MOVE_SELF):
            if parent == "":
                self._broken = True  # the root itself went away or moved
            return  # the parent's own event names it
        rel = f"{parent}/{event.name}" if parent and event.name else (event.name or parent)
        if is_byproduct(rel):
            return
        self._report(rel)
        if event.mask & flags.ISDIR and event.mask & (flags.CREATE | flags.MOVED_TO):
            self._add_tree(rel, report=True)

    def _add_tree(self, rel: str, report: bool) -> None:
        """Watch `rel` and every directory below it (the watch first, then the listing, so
        nothing made in between is missed); with `report`, everything found counts as changed."""
        stack = [rel]
        while stack and not self._broken:
            here = stack.pop()
            if not self._watch(here):
                continue
            try:
                entries = list(os.scandir(self.root / here if here else self.root))
            except OSError:
                continue
            for entry in entries:
                child = f"{here}/{entry.name}" if here else entry.name
                if is_byproduct(child):
                    continue
                if report:
                    self._report(child)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(child)

    def _watch(self, rel: str) -> bool:
        try:
            wd = self._inotify.add_watch(self.root / rel if rel else self.root, _WATCH_MASK)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False  # gone or replaced by a file or link: its parent's event tells
            log.info("watching %s failed (%s): changes are found by walking the tree", self.root, err)
            self._broken = True  # out of watches, or not allowed: every answer is "unknown" now
            return False
        self._dirs[wd] = rel
        return True

    def _report(self, rel: str) -> None:
        for found in self._pending.values():
            if found is not None:
                found.add(rel)

    def _unknown(self) -> None:
        for consumer in self._pending:
            self._pending[consumer] = None


def start_watch(root: Path) -> TreeWatch | None:
    """A watch on `root`, or None where the kernel will not give one (callers walk instead)."""
    try:
        return TreeWatch(root)
    except OSError as err:
        log.info("no inotify watch on %s (%s): changes are found by walking the tree", root, err)
        return None
