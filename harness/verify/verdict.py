"""The clean-room verdict: the parity run whose result the harness reports.

The verdict trusts nothing the agent wrote or started:
- the tree is built in a fresh folder outside the worktree from the base commit (read by
  its hash) plus only the agent's changes to the allowed paths (see `allowed.py`), copied
  as regular files; the parity test and every test-support file come from the base commit;
  no bytecode anywhere;
- it runs in a new sandbox (a new container or bwrap namespace), where no process of the
  agent lives, as `python -P -B -m pytest` with plugin autoload off and only the harness's
  plugin (`verdict_plugin.py`, mounted read-only outside the tree) added;
- a pass needs pytest's own report (junit and the summary line, as `judge` reads them) AND
  the plugin's record stream to agree: every collected test reported once, passed, nothing
  else, no integrity violation; and two cross-checks in fresh processes: the official
  modules the test used fingerprint the same as a fresh import, and the port imports with
  the official reference unreachable;
- the worktree must still hold what was copied once the run ends (a process left running
  cannot swap files around the verdict).
Anything else ends `debug_red` (or `blocked` when the tree could not be built), never a crash.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import select
import shlex
import shutil
import stat
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from harness.verify.allowed import allowed_paths, changed_entries, is_bytecode

SUPPORT_DIR = ".harness-verdict"
PLUGIN_MODULE = "harness_verdict_plugin"
_PLUGIN_SOURCE = Path(__file__).with_name("verdict_plugin.py")
_RECORD_WAIT_S = 5.0

ExecutorFactory = Callable[[Any], Any]


@dataclass
class CleanTree:
    """What an executor needs of a workspace, for the clean-room tree: the executors mount
    `path` as the workspace and each of `local_assets()` read-only inside it."""

    path: Path
    official_ref_dir: Path | None
    repo: Path
    run_id: str
    assets: list[tuple[str, Path]]

    def local_assets(self) -> list[tuple[str, Path]]:
        return list(self.assets)


@dataclass
class Verdict:
    run: Any  # ParityRun
    test_source: str
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


class TreeProblem(Exception):
    """A change that cannot be put into the clean tree (a link, a special file, an escape)."""


# ----- building the tree ---------------------------------------------------------------------

def _read_regular(root: Path, rel: str) -> tuple[bytes, bool]:
    """The bytes of `rel` under `root` and whether it is executable, refusing a path any of
    whose parts is a symlink or that is not a regular file."""
    parts = PurePosixPath(rel).parts
    if not parts or ".." in parts or PurePosixPath(rel).is_absolute():
        raise TreeProblem(f"{rel}: not a plain relative path")
    here = root
    for i, part in enumerate(parts):
        here = here / part
        st = os.lstat(here)
        if stat.S_ISLNK(st.st_mode):
            raise TreeProblem(f"{rel}: {'/'.join(parts[:i + 1])} is a symlink; only regular files are copied")
        if i < len(parts) - 1 and not stat.S_ISDIR(st.st_mode):
            raise TreeProblem(f"{rel}: {'/'.join(parts[:i + 1])} is not a folder")
    if not stat.S_ISREG(st.st_mode):
        raise TreeProblem(f"{rel}: not a regular file")
    fd = os.open(here, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read(), bool(st.st_mode & stat.S_IXUSR)


def _write_regular(tree: Path, rel: str, data: bytes, executable: bool = False) -> None:
    dest = tree / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists() and not dest.is_file():
        raise TreeProblem(f"{rel}: the base commit has something else at this path")
    dest.write_bytes(data)
    os.chmod(dest, 0o755 if executable else 0o644)


def _drop_bytecode(tree: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(tree):
        for d in [d for d in dirnames if d == "__pycache__"]:
            shutil.rmtree(Path(dirpath) / d)
            dirnames.remove(d)
        for name in filenames:
            if name.endswith((".pyc", ".pyo")):
                os.unlink(Path(dirpath) / name)


def build_tree(workspace: Any, packet: Any, tree: Path, *, agent_test: bool,
               extra_files: dict[str, Path] | None = None) -> dict[str, bytes]:
    """Fill the empty folder `tree`: the base commit, then the agent's allowed changes (and
    its parity test when `agent_test`), then `extra_files` (harness-owned). Returns
    {path: bytes} of what came from the worktree. Raises TreeProblem."""
    workspace.export_commit(workspace.base_commit, tree)
    allowed = allowed_paths(packet)
    copied: dict[str, bytes] = {}
    changes = changed_entries(workspace)
    wanted = {rel: kind for rel, kind in changes.items() if allowed.allows(rel) and not is_bytecode(rel)}
    if agent_test and allowed.parity_test:
        wanted[allowed.parity_test] = changes.get(allowed.parity_test, "file")
    for rel, kind in sorted(wanted.items()):
        if kind == "missing":
            target = tree / rel
            if target.is_file() and not target.is_symlink():
                target.unlink()
            continue
        if kind == "dir":
            continue
        data, executable = _read_regular(Path(workspace.path), rel)
        _write_regular(tree, rel, data, executable)
        copied[rel] = data
    for rel, source in (extra_files or {}).items():
        _write_regular(tree, rel, Path(source).read_bytes())
    _drop_bytecode(tree)
    # The executors bind the workspace's `.git` pointer read-only; the tree has no git at all.
    (tree / ".git").write_text("")
    return copied


def swapped_since(workspace: Any, copied: dict[str, bytes]) -> list[str]:
    """Files whose worktree content differs from what the tree got (changed meanwhile)."""
    out = []
    for rel, digest in copied.items():
        try:
            data, _ = _read_regular(Path(workspace.path), rel)
        except (OSError, TreeProblem):
            out.append(rel)
            continue
        if data != digest:
            out.append(rel)
    return out


def _signature(root: Path, rels: list[str]) -> dict[str, tuple[int, int, int] | None]:
    """(inode, ctime, size) per file: any write, rename or utime changes the ctime."""
    out: dict[str, tuple[int, int, int] | None] = {}
    for rel in rels:
        try:
            st = os.lstat(root / rel)
            out[rel] = (st.st_ino, st.st_ctime_ns, st.st_size)
        except OSError:
            out[rel] = None
    return out


class WorktreeWatch:
    """Notices any write to the copied files while the verdict runs, however often a left-over
    process swaps them back and forth (sampling content could miss a swap that is undone)."""

    def __init__(self, root: Path, rels: list[str], period_s: float = 0.1) -> None:
        self.root, self.rels, self.period_s = root, rels, period_s
        self.before = _signature(root, rels)
        self.changed: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        now = _signature(self.root, self.rels)
        self.changed |= {rel for rel in self.rels if now[rel] != self.before[rel]}

    def _loop(self) -> None:
        while not self._stop.wait(self.period_s):
            self._sample()

    def stop(self) -> list[str]:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(2)
            self._sample()
        return sorted(self.changed)


def differs_from_commit(workspace: Any, commit: str, copied: dict[str, bytes]) -> list[str]:
    """Copied code files whose bytes are not the blob `commit` records for them: the disk
    changed between the checkpoint and the copy."""
    code = {rel: data for rel, data in copied.items() if rel.endswith(".py")}
    if not code:
        return []
    out = workspace._host_git("ls-tree", "-z", commit, "--", *sorted(code))
    recorded = {}
    for entry in out.split("\0"):
        if "\t" in entry:
            meta, rel = entry.split("\t", 1)
            recorded[rel] = meta.split()[2]
    bad = []
    for rel, data in code.items():
        blob = recorded.get(rel)
        algo = hashlib.sha256 if blob and len(blob) == 64 else hashlib.sha1
        if blob != algo(b"blob %d\0" % len(data) + data).hexdigest():
            bad.append(rel)
    return sorted(bad)


# ----- the record stream ---------------------------------------------------------------------

class RecordReader:
    """Reads the plugin's records from a FIFO while the test runs."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o600)
        os.chmod(path, 0o666)  # the sandbox user may differ from the harness's
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        # Our own writer keeps the pipe from reading as closed before the plugin opens it.
        self.keep_open = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self.eof = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    self.eof = True
                    return
                self.data += chunk
            elif self._stop.is_set():
                return

    def finish(self) -> list[dict[str, Any]]:
        """Stop after the command ended; the records, or a record saying the pipe stayed open."""
        os.close(self.keep_open)
        self._thread.join(_RECORD_WAIT_S)
        self._stop.set()
        self._thread.join(1)
        os.close(self.fd)
        records: list[dict[str, Any]] = []
        for line in bytes(self.data).decode("utf-8", "replace").splitlines():
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                item = {"k": "garbage", "text": line[:200]}
            records.append(item if isinstance(item, dict) else {"k": "garbage", "text": line[:200]})
        if not self.eof:
            records.append({"k": "open_writer"})
        return records


def defined_test_names(source: str) -> set[str]:
    """Test functions the file defines (module level and in Test* classes)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            names |= {f"{node.name}::{n.name}" for n in node.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")}
    return names


def record_problems(records: list[dict[str, Any]], expected: set[str]) -> list[str]:
    """Why the record stream does not show a clean pass of every expected test (empty: it does)."""
    problems: list[str] = []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_kind.setdefault(str(r.get("k")), []).append(r)
    for kind in ("start", "collected", "finish", "end"):
        if len(by_kind.get(kind, [])) != 1:
            problems.append(f"{len(by_kind.get(kind, []))} '{kind}' records (expected exactly one)")
    for r in by_kind.get("violation", []):
        problems.append(f"integrity: {r.get('what')}")
    for kind, what in (("garbage", "unreadable records"), ("open_writer", "the record pipe stayed open after the test ended"),
                       ("collect_error", "a collection error")):
        if by_kind.get(kind):
            problems.append(what)
    finish = by_kind.get("finish", [{}])[0]
    if finish.get("exitstatus") != 0:
        problems.append(f"pytest's session ended with status {finish.get('exitstatus')}")
    ids = list((by_kind.get("collected") or [{}])[0].get("ids") or [])
    if not ids:
        problems.append("no test was collected")
    if len(set(ids)) != len(ids):
        problems.append("a test id was collected twice")
    short = {i.split("::", 1)[-1].split("[")[0] for i in ids}
    for name in sorted(expected - short):
        problems.append(f"the test file defines {name} but it was not collected")
    seen: dict[tuple[str, str, str], int] = {}
    for kind in ("report", "phase"):
        for r in by_kind.get(kind, []):
            key = (kind, str(r.get("id")), str(r.get("when")))
            seen[key] = seen.get(key, 0) + 1
            if r.get("id") not in ids:
                problems.append(f"a {kind} record for {r.get('id')}, which was not collected")
            if r.get("outcome") != "passed" or r.get("raised") or r.get("wasxfail"):
                problems.append(f"{r.get('id')} {r.get('when')}: {r.get('outcome')}"
                                f"{' raised ' + str(r.get('raised')) if r.get('raised') else ''}")
    for test_id in ids:
        for kind in ("report", "phase"):
            for when in ("setup", "call", "teardown"):
                n = seen.get((kind, test_id, when), 0)
                if n != 1:
                    problems.append(f"{test_id} {when}: {n} {kind} records (expected one)")
    return list(dict.fromkeys(problems))


def fingerprint_problems(test_side: dict[str, dict[str, str]], fresh: dict[str, Any]) -> list[str]:
    if "error" in fresh:
        return [f"the official modules the test used do not import on their own: {fresh['error']}"]
    problems = []
    clean = fresh.get("modules") or {}
    for module, entries in test_side.items():
        before = clean.get(module, {})
        for name in sorted(set(entries) | set(before)):
            if entries.get(name) != before.get(name):
                problems.append(f"integrity: official {module}.{name} differs from a fresh import (patched at run time)")
    return problems[:20]


# ----- running it ----------------------------------------------------------------------------

def _module_name(rel: str) -> str | None:
    path = PurePosixPath(rel)
    if path.suffix != ".py" or not path.parts or path.parts[0] != "fastvideo":
        return None
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _support_dir(tmp: Path) -> Path:
    support = tmp / "support"
    support.mkdir()
    os.chmod(tmp, 0o755)
    os.chmod(support, 0o755)
    shutil.copyfile(_PLUGIN_SOURCE, support / f"{PLUGIN_MODULE}.py")
    os.chmod(support / f"{PLUGIN_MODULE}.py", 0o644)
    return support


def _split_marker(stdout: str, marker: str) -> dict[str, Any]:
    out = {}
    parts = stdout.split("\n" + marker + "\n")
    for chunk in parts[1:]:
        line = chunk.strip().splitlines()[0] if chunk.strip() else ""
        try:
            out.update(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def run_verdict(
    workspace: Any,
    packet: Any,
    new_executor: ExecutorFactory,
    log_dir: Path,
    *,
    agent_test: bool = False,
    parity_test: str | None = None,
    extra_files: dict[str, Path] | None = None,
    commit: str | None = None,
    timeout_s: float = 900,
) -> Verdict:
    """Build the clean tree, run the parity test in a new sandbox, and judge it (see module doc).

    `new_executor(tree)` makes an executor (not started) for a CleanTree. `agent_test` takes
    the agent's parity test instead of the base one (a new test, or an approved loosening).
    `parity_test` and `extra_files` let the graders run a harness-owned test too. `commit`
    (the checkpoint just taken) must hold exactly the code files that were copied.
    """
    from harness.sandbox.pytest_runner import run_parity_test
    from harness.verify.guard_sources import official_module_names

    test = parity_test or str(packet.get("parity_test") if isinstance(packet, dict) else packet.parity_test)
    source = "the agent's version" if agent_test else "the base commit's version"
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="fastvideo-harness-verdict-"))
    tree = tmp / "tree"
    tree.mkdir()
    seconds: dict[str, float] = {}
    watch: WorktreeWatch | None = None
    try:
        try:
            copied = build_tree(workspace, packet, tree, agent_test=agent_test, extra_files=extra_files)
        except (TreeProblem, OSError) as exc:
            return Verdict(_not_run(test, f"the clean-room tree could not be built: {exc}", log_dir), source,
                           [str(exc)])
        watch = WorktreeWatch(Path(workspace.path), sorted(copied))
        stale = differs_from_commit(workspace, commit, copied) if commit else []
        test_file = tree / test
        if not test_file.is_file():
            return Verdict(_not_run(test, f"parity test {test} is missing from the clean-room tree", log_dir,
                                    status="debug_red"), source)
        seconds["tree_s"] = round(time.monotonic() - started, 3)
        support = _support_dir(tmp)
        official = getattr(workspace, "official_ref_dir", None)
        assets = [(n, p) for n, p in (workspace.local_assets() if hasattr(workspace, "local_assets") else [])]
        clean = CleanTree(tree, official, Path(getattr(workspace, "repo", tree)),
                          f"{getattr(workspace, 'run_id', 'verdict')}-verdict-{uuid.uuid4().hex[:6]}",
                          assets + [(SUPPORT_DIR, support)])
        executor = new_executor(clean)
        inside = str(support) if executor.kind == "local" else f"{executor.workdir}/{SUPPORT_DIR}"
        official_names = sorted(official_module_names(official))
        # Only the base commit's conftest files may register as pytest plugins.
        conftests = [f"{executor.workdir}/{rel}" for p in tree.rglob("conftest.py")
                     if (rel := p.relative_to(tree).as_posix()) not in copied]
        config = {"tree": executor.workdir, "official": executor.official_dir, "records": f"{inside}/records",
                  "official_modules": official_names, "conftests": conftests}
        (support / "config.json").write_text(json.dumps(config))
        os.chmod(support / "config.json", 0o644)
        reader = RecordReader(support / "records")
        env = {"PYTHONPATH": f"{executor.workdir}:{inside}", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONPYCACHEPREFIX": f"/tmp/harness-pycache-{uuid.uuid4().hex[:8]}",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONNOUSERSITE": "1",
               "HARNESS_VERDICT_CONFIG": f"{inside}/config.json"}
        t0 = time.monotonic()
        executor.start()
        seconds["sandbox_start_s"] = round(time.monotonic() - t0, 3)
        try:
            t0 = time.monotonic()
            try:
                run = run_parity_test(executor, test, log_dir, timeout_s=timeout_s, python="python -P -B",
                                      extra_args=f"-p {PLUGIN_MODULE}", env=env)
            finally:
                records = reader.finish()
            seconds["test_s"] = round(time.monotonic() - t0, 3)
            problems: list[str] = [f"integrity: {r.get('what')}" for r in records if r.get("k") == "violation"]
            if run.status == "non_skip_pass":
                problems = record_problems(records, defined_test_names(test_file.read_text(errors="replace")))
                if not problems:
                    t0 = time.monotonic()
                    problems = _cross_checks(executor, inside, config, records, copied, timeout_s)
                    seconds["cross_check_s"] = round(time.monotonic() - t0, 3)
        finally:
            executor.close()
        moved = sorted(set(watch.stop()) | set(swapped_since(workspace, copied)) | set(stale))
        if moved:
            problems.append("the worktree changed while the verdict ran (a process is still writing): "
                            + ", ".join(moved[:5]))
        if problems:
            run = run.model_copy(update={
                "status": "debug_red", "blocker": None,
                "first_failure": "verdict not trusted: " + "; ".join(problems[:8])})
            _append_log(run.log_path, problems)
        seconds["total_s"] = round(time.monotonic() - started, 3)
        return Verdict(run, source, problems, seconds)
    finally:
        if watch is not None:
            watch.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _cross_checks(executor: Any, inside: str, config: dict, records: list[dict[str, Any]],
                  copied: dict[str, bytes], timeout_s: float) -> list[str]:
    """The official modules fingerprint as a fresh import does, and the port imports with
    the official reference unreachable; each in a fresh process of the same new sandbox."""
    official_record = next((r for r in records if r.get("k") == "official"), {})
    used = official_record.get("modules") or {}
    natives = sorted({m for rel in copied if (m := _module_name(rel))})
    marker = f"=====HARNESS-CROSS-CHECK-{uuid.uuid4().hex}====="
    script = f"{inside}/{PLUGIN_MODULE}.py"
    parts = []
    if used and config.get("official"):
        args = {"official": config["official"], "modules": sorted(used), "marker": marker}
        parts.append(f"PYTHONPATH= python -P -B {shlex.quote(script)} fingerprint {shlex.quote(json.dumps(args))}")
    if natives:
        args = {"official": config.get("official"), "official_modules": config["official_modules"],
                "native_modules": natives, "marker": marker}
        parts.append(f"PYTHONPATH={shlex.quote(config['tree'])} python -P -B {shlex.quote(script)} native "
                     f"{shlex.quote(json.dumps(args))}")
    if not parts:
        return []
    env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    result = executor.run(" ; ".join(parts), timeout_s=min(timeout_s, 300), env=env)
    out = _split_marker(result.stdout, marker)
    problems = []
    if used and config.get("official"):
        if "modules" not in out and "error" not in out:
            return [f"the official fingerprint cross-check did not report (exit {result.exit_code}): "
                    f"{result.stderr.strip()[-300:]}"]
        problems += fingerprint_problems(used, out)
    if natives:
        if "errors" not in out:
            return problems + [f"the native import cross-check did not report (exit {result.exit_code})"]
        for name, error in sorted(out["errors"].items()):
            problems.append(f"the port's module {name} does not import without the official reference: {error}")
        for what in out.get("blocked") or []:
            problems.append(f"the port reaches the official reference when imported: {what}")
    return problems


def _not_run(test: str, why: str, log_dir: Path, status: str = "blocked") -> Any:
    from datetime import datetime, timezone

    from harness.sandbox.pytest_runner import ParityRun

    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"verdict-{uuid.uuid4().hex[:8]}.log"
    log.write_text(f"verdict not run: {why}\n")
    fields = {"blocker": why} if status == "blocked" else {"first_failure": why}
    return ParityRun(status=status, parity_test=test, command="not run", exit_code=-1, timed_out=False,
                     duration_s=0.0, log_path=str(log),
                     started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields)


def _append_log(path: str, problems: list[str]) -> None:
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("--- verdict checks ---\n" + "\n".join(problems) + "\n")
    except OSError:
        pass
