"""The verdict: the parity run whose result the harness reports, by isolation.

No code the agent added or changed runs in the process that judges:

- two fresh trees are built outside the worktree: the *trusted* tree is the base commit
  (read by its hash) and holds the parity test, its helpers and conftest files; the *port*
  tree is the base commit plus the agent's changes to the allowed paths (see `allowed.py`),
  copied as regular files; both are mounted read-only;
- the test runs with pytest in a *trusted process*, in its own new sandbox, with the official
  reference and the harness's plugin (`isolation/harness_verdict_plugin.py`); every import of
  the port's packages there is served by the *port process*, in a second new sandbox without
  the official reference, pytest or the harness's files, reached through one socket. Data
  crosses by value, the port's objects stay where they are (see `isolation/`);
- the plugin seeds the test with a per-verdict secret, measures every comparison the test
  makes and records each test's outcome; the outcome comes from those records and pytest's
  junit report, never from the log;
- anything the isolation cannot carry faithfully ends `blocked` with the reason;
- the worktree must still hold what was copied once the run ends (a process left running
  cannot swap files around the verdict).

A parity test the agent wrote (no test at the base commit, and no person approved it) cannot
run in the trusted process: it runs in one sandbox on the port tree and the verdict says its
evidence is the agent's own test.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
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

from harness.sandbox.executors.base import CommandResult, Mount
from harness.sandbox.executors.limits import DEFAULT_TEST_TIMEOUT_S
from harness.verify.allowed import allowed_paths, changed_entries, is_bytecode
from harness.verify.isolation import FOLDER as ISOLATION_FOLDER
from harness.verify.isolation import PLUGIN_MODULE, PORT_FILES, PYTEST_MODULE, SERVER_MODULE, TRUSTED_FILES

ExecutorFactory = Callable[[Any], Any]
MAX_TRANSFER_BYTES = 64 << 30  # one message from the port process; the sandbox's memory limit bites first
PORT_CONNECT_S = 300.0
_PORT_GRACE_S = 10.0

# What `agent_test` may say about the parity test the verdict runs.
BASE_TEST = "base"          # the base commit's test (the default)
APPROVED_TEST = "approved"  # the agent's version, approved by a person: it runs in the trusted process
OWN_TEST = "own"            # the agent's own new test: it cannot be trusted, and the verdict says so


@dataclass
class CleanTree:
    """What an executor needs of a workspace for a verdict's sandbox: the tree (`path`,
    mounted read-only at `mount_at` or its own path), the read-only assets inside it, and the
    support mounts."""

    path: Path
    official_ref_dir: Path | None
    repo: Path
    run_id: str
    assets: list[tuple[str, Path]]
    mounts: list[Mount] = field(default_factory=list)
    read_only: bool = True
    mount_at: str | None = None

    def local_assets(self) -> list[tuple[str, Path]]:
        return list(self.assets)


@dataclass
class Verdict:
    run: Any  # ParityRun
    test_source: str
    problems: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    evidence: str = "isolated"  # or "agent_test": the agent's own test, run without isolation


class TreeProblem(Exception):
    """A change that cannot be put into a tree (a link, a special file, an escape)."""


# ----- building the trees ----------------------------------------------------------------------

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
    """Write a new file at `rel` (never into an existing inode: the trees share hard links)."""
    dest = tree / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_symlink() or dest.exists() and not dest.is_file():
        raise TreeProblem(f"{rel}: the base commit has something else at this path")
    if dest.exists():
        dest.unlink()
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


def _hardlink_copy(source: Path, dest: Path) -> None:
    shutil.copytree(source, dest, copy_function=os.link, symlinks=True)


def build_trees(workspace: Any, packet: Any, trusted: Path, port: Path, *, agent_test: str = BASE_TEST,
                extra_files: dict[str, Path] | None = None) -> dict[str, bytes]:
    """Fill the empty folders `trusted` (the base commit; the agent's parity test only when a
    person approved it; `extra_files`, harness-owned) and `port` (the base commit plus the
    agent's allowed changes). Returns {path: bytes} of what came from the worktree."""
    workspace.export_commit(workspace.base_commit, trusted)
    _drop_bytecode(trusted)
    _hardlink_copy(trusted, port)
    allowed = allowed_paths(packet)
    copied: dict[str, bytes] = {}
    changes = changed_entries(workspace)
    wanted = {rel: kind for rel, kind in changes.items() if allowed.allows(rel) and not is_bytecode(rel)}
    if agent_test != BASE_TEST and allowed.parity_test:
        wanted[allowed.parity_test] = changes.get(allowed.parity_test, "file")
    for rel, kind in sorted(wanted.items()):
        if kind == "dir":
            continue
        if kind == "missing":
            target = port / rel
            if target.is_file() and not target.is_symlink():
                target.unlink()
            continue
        data, executable = _read_regular(Path(workspace.path), rel)
        _write_regular(port, rel, data, executable)
        if rel == allowed.parity_test and agent_test == APPROVED_TEST:
            _write_regular(trusted, rel, data, executable)
        copied[rel] = data
    for rel, source in (extra_files or {}).items():
        _write_regular(trusted, rel, Path(source).read_bytes())
    return copied


def port_packages(packet: Any, tree: Path) -> list[str]:
    """The top-level packages the port lives in (those of its allowed paths): every import
    of them in the trusted process is served by the port process."""
    allowed = allowed_paths(packet)
    tops = {PurePosixPath(p).parts[0] for p in (*allowed.files, *allowed.folders) if len(PurePosixPath(p).parts) > 1}
    return sorted(t for t in tops if t != "tests" and (tree / t / "__init__.py").is_file())


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


# ----- judging the records -----------------------------------------------------------------------

def read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict):
            records.append(item)
    return records


def comparison_figures(comparisons: list[dict[str, Any]]) -> tuple[dict[str, float], list[str]]:
    """The recorded comparisons as metrics (`label.max_abs`) and lines, the failing ones first."""
    ordered = sorted(comparisons, key=lambda c: (c.get("passed") is not False, c.get("where") or ""))
    metrics: dict[str, float] = {}
    lines = []
    for c in ordered:
        label = c.get("label") or c.get("where") or c.get("fn")
        verdict = "FAILED" if c.get("passed") is False else "passed"
        if c.get("shape_mismatch"):
            lines.append(f"{label}: {c.get('fn')} {verdict}: shape {tuple(c.get('shape') or ())} != "
                         f"{tuple(c.get('expected_shape') or ())} ({c.get('where')})")
            continue
        if "max_abs" not in c:
            lines.append(f"{label}: {c.get('fn')} {verdict} ({c.get('kind') or 'not tensors'}, {c.get('where')})")
            continue
        for key in ("max_abs", "max_rel"):
            metrics.setdefault(f"{label}.{key}", float(c[key]))
        tol = f", atol={c['atol']} rtol={c['rtol']}" if c.get("atol") is not None or c.get("rtol") is not None else ""
        lines.append(f"{label}: {c.get('fn')} {verdict}: shape {tuple(c.get('shape') or ())} {c.get('dtype', '')} "
                     f"max_abs={c['max_abs']:.3e} max_rel={c['max_rel']:.3e}{tol} ({c.get('where')})")
    return metrics, lines[:80]


def judge_records(run: Any, records: list[dict[str, Any]], port: CommandResult | None) -> tuple[Any, list[str]]:
    """The run as the trusted process's records tell it. Returns (run, problems); a problem
    means the pass (if pytest reported one) is not trusted."""
    tests = [r for r in records if r.get("k") == "test"]
    reports = [r for r in records if r.get("k") == "report"]
    finish = next((r for r in records if r.get("k") == "finish"), None)
    comparisons = [c for t in tests for c in t.get("comparisons") or [] if isinstance(c, dict)]
    metrics, lines = comparison_figures(comparisons)
    evidence = _evidence(tests, comparisons)
    update: dict[str, Any] = {"comparisons": comparisons[:200], "evidence": evidence}
    if lines:
        update["comparison_lines"] = lines + [ln for ln in run.comparison_lines if ln not in lines][:40]
        update["metrics"] = {**metrics, **{k: v for k, v in run.metrics.items() if k not in metrics}}
    run = run.model_copy(update=update)

    limits = [lim for t in tests for lim in t.get("limits") or [] if isinstance(lim, dict)]
    if limits:
        first = limits[0]
        where = f" at {first.get('where')}" if first.get("where") else ""
        why = (f"the verdict cannot isolate this test: {first.get('what')}{where}"
               f"{'; ' + first['remedy'] if first.get('remedy') else ''}")
        return run.model_copy(update={"status": "blocked", "blocker": why}), [why]
    port_problem = (finish or {}).get("port")
    if isinstance(port_problem, str) and port_problem.startswith(("the port process did not connect",
                                                                  "the port process refused")):
        why = f"{port_problem}{_port_tail(port)}"
        return run.model_copy(update={"status": "blocked", "blocker": why}), [why]
    if run.status != "non_skip_pass":
        return run, []
    problems: list[str] = []
    if finish is None:
        problems.append("the trusted process left no final record")
    elif finish.get("exitstatus") != 0:
        problems.append(f"pytest's session ended with status {finish.get('exitstatus')}")
    if not tests:
        problems.append("no test ran in the trusted process")
    for r in reports:
        if r.get("outcome") != "passed" or r.get("wasxfail"):
            problems.append(f"{r.get('id')} {r.get('when')}: {r.get('outcome')}{' (xfail)' if r.get('wasxfail') else ''}")
    for c in comparisons:
        if c.get("asserting") and c.get("passed") is False:
            problems.append(f"a comparison failed inside a passing test: {c.get('label') or c.get('where')} "
                            f"({c.get('error') or 'not close'})")
    return run, list(dict.fromkeys(problems))


def _evidence(tests: list[dict[str, Any]], comparisons: list[dict[str, Any]]) -> list[str]:
    notes = []
    if tests:
        seeded = sum(1 for t in tests if t.get("rng_used"))
        if seeded == len(tests):
            notes.append("inputs: random, seeded with the verdict's secret (stored outputs cannot match them)")
        elif seeded:
            notes.append(f"inputs: random in {seeded} of {len(tests)} tests, seeded with the verdict's secret; the "
                         "others drew no random numbers (fixed inputs are weaker evidence)")
        else:
            notes.append("inputs: fixed (the test drew no random numbers): weaker evidence, a port could "
                         "recognise them")
        calls = sum(int(t.get("port_calls") or 0) for t in tests)
        notes.append(f"the test reached the port through {calls} calls to the isolated port process")
    asserting = [c for c in comparisons if c.get("asserting")]
    notes.append(f"the harness measured {len(comparisons)} comparisons ({len(asserting)} asserting)"
                 if comparisons else "the harness saw no comparison call (assert_close, allclose, equal): "
                                     "the test checks its numbers some other way")
    return notes


def _port_tail(port: CommandResult | None) -> str:
    if port is None:
        return ""
    tail = (port.stderr.strip() or port.stdout.strip())[-600:]
    return f" (port process exit {port.exit_code}: {tail})" if tail else f" (port process exit {port.exit_code})"


# ----- running it --------------------------------------------------------------------------------

def _folder(parent: Path, name: str, mode: int) -> Path:
    path = parent / name
    path.mkdir()
    os.chmod(path, mode)
    return path


def _support(parent: Path, name: str, files: tuple[str, ...]) -> Path:
    folder = _folder(parent, name, 0o755)
    for file in files:
        shutil.copyfile(ISOLATION_FOLDER / file, folder / file)
        os.chmod(folder / file, 0o644)
    return folder


def _official_on_path(official: str | None, names: set[str]) -> str:
    return f":{official}" if official and names else ""


def run_verdict(
    workspace: Any,
    packet: Any,
    new_executor: ExecutorFactory,
    log_dir: Path,
    *,
    agent_test: bool | str = False,
    parity_test: str | None = None,
    extra_files: dict[str, Path] | None = None,
    commit: str | None = None,
    timeout_s: float = DEFAULT_TEST_TIMEOUT_S,
) -> Verdict:
    """Build the trees, run the test in the trusted process with the port in its own, judge.

    `new_executor(tree)` makes an executor (not started) for a CleanTree. `agent_test`:
    False/"base" runs the base commit's test; "approved" the agent's version a person
    approved; True/"own" the agent's own test (no base version), which runs without
    isolation and is labelled so. `parity_test` and `extra_files` let the graders run a
    harness-owned test. `commit` (the checkpoint just taken) must hold the code files copied.
    """
    from harness.verify.guard_sources import official_module_names

    mode = OWN_TEST if agent_test is True else BASE_TEST if agent_test is False else str(agent_test)
    test = parity_test or str(packet.get("parity_test") if isinstance(packet, dict) else packet.parity_test)
    source = {BASE_TEST: "the base commit's version", APPROVED_TEST: "the agent's version, approved by a person",
              OWN_TEST: "the agent's own version (not isolated)"}[mode]
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="fastvideo-harness-verdict-"))
    os.chmod(tmp, 0o755)
    trusted_tree, port_tree = tmp / "trusted", tmp / "port"
    trusted_tree.mkdir()
    seconds: dict[str, float] = {}
    watch: WorktreeWatch | None = None
    executors: list[Any] = []
    try:
        try:
            copied = build_trees(workspace, packet, trusted_tree, port_tree, agent_test=mode, extra_files=extra_files)
        except (TreeProblem, OSError) as exc:
            return Verdict(_not_run(test, f"the verdict's trees could not be built: {exc}", log_dir), source,
                           [str(exc)])
        watch = WorktreeWatch(Path(workspace.path), sorted(copied))
        stale = differs_from_commit(workspace, commit, copied) if commit else []
        if not (trusted_tree / test).is_file():
            return Verdict(_not_run(test, f"parity test {test} is missing from the verdict's tree", log_dir,
                                    status="debug_red"), source)
        seconds["tree_s"] = round(time.monotonic() - started, 3)
        official = getattr(workspace, "official_ref_dir", None)
        assets = list(workspace.local_assets()) if hasattr(workspace, "local_assets") else []
        run_id = f"{getattr(workspace, 'run_id', 'verdict')}-verdict-{uuid.uuid4().hex[:6]}"
        repo = Path(getattr(workspace, "repo", trusted_tree))
        if mode == OWN_TEST:
            run, problems, port_result = _run_unisolated(port_tree, official, repo, run_id, assets, new_executor,
                                                         executors, test, log_dir, timeout_s, tmp)
            evidence = "agent_test"
        else:
            run, problems, port_result = _run_isolated(
                trusted_tree, port_tree, official, repo, run_id, assets, new_executor, executors, test, log_dir,
                timeout_s, tmp, packet, sorted(official_module_names(official)), seconds)
            evidence = "isolated"
        moved = sorted(set(watch.stop()) | set(swapped_since(workspace, copied)) | set(stale))
        if moved:
            problems.append("the worktree changed while the verdict ran (a process is still writing): "
                            + ", ".join(moved[:5]))
        # A pass is never trusted with a problem; and a tree that moved under the test gives a
        # result of no tree at all (a skip read from a half-written file), so it is red too.
        if problems and (run.status == "non_skip_pass" or (moved and run.status not in ("debug_red", "blocked"))):
            run = run.model_copy(update={"status": "debug_red", "blocker": None,
                                         "first_failure": "verdict not trusted: " + "; ".join(problems[:8])})
        _append_log(run.log_path, problems, port_result, run.comparison_lines if evidence == "isolated" else [])
        seconds["total_s"] = round(time.monotonic() - started, 3)
        return Verdict(run, source, problems, seconds, evidence)
    finally:
        _side_by_side(executors, _close_quietly)
        if watch is not None:
            watch.stop()
        _remove_in_background(tmp)


def _side_by_side(executors: list[Any], action: Callable[[Any], None]) -> None:
    """`action(ex)` for every sandbox at once (a docker container takes a moment to start and
    to remove); the first error is raised here, in the caller's thread."""
    errors: list[BaseException] = []

    def act(ex: Any) -> None:
        try:
            action(ex)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=act, args=(ex,), daemon=True) for ex in executors]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _close_quietly(ex: Any) -> None:
    try:
        ex.close()
    except Exception:  # already gone
        pass


def _remove_in_background(tmp: Path) -> None:
    """The verdict's folder, removed once its sandboxes are gone, without holding up the result:
    on a filesystem that discards freed blocks, each file written a few seconds earlier takes
    milliseconds to unlink (a tree is thousands). Not a daemon: the interpreter waits for it."""
    threading.Thread(target=shutil.rmtree, args=(tmp,), kwargs={"ignore_errors": True},
                     name="verdict-cleanup").start()


def _run_isolated(trusted_tree: Path, port_tree: Path, official: Any, repo: Path, run_id: str,
                  assets: list[tuple[str, Path]], new_executor: ExecutorFactory, executors: list[Any], test: str,
                  log_dir: Path, timeout_s: float, tmp: Path, packet: Any, official_names: list[str],
                  seconds: dict[str, float]) -> tuple[Any, list[str], CommandResult | None]:
    from harness.sandbox.pytest_runner import run_parity_test

    trusted_support = _support(tmp, "trusted-support", TRUSTED_FILES)
    port_support = _support(tmp, "port-support", PORT_FILES)
    out = _folder(tmp, "out", 0o777)
    channel = _folder(tmp, "channel", 0o777)
    shared = _folder(tmp, "shared", 0o777)
    official_path = Path(official).resolve() if official else None
    port_assets = [(n, p) for n, p in assets if official_path is None or Path(p).resolve() != official_path]
    _mount_points(trusted_tree, assets)
    _mount_points(port_tree, port_assets)
    trusted = new_executor(CleanTree(trusted_tree, official, repo, run_id, assets, mounts=[
        Mount(trusted_support, str(trusted_support)), Mount(out, str(out), writable=True),
        Mount(channel, str(channel), writable=True), Mount(shared, str(shared), writable=True)]))
    executors.append(trusted)
    port = new_executor(CleanTree(port_tree, None, repo, f"{run_id}-port", port_assets, mounts=[
        Mount(port_support, str(port_support)), Mount(channel, str(channel)), Mount(shared, str(shared))],
        mount_at=trusted.workdir if trusted.kind == "bwrap" else None))
    executors.append(port)
    packages = port_packages(packet, port_tree)
    socket_path = f"{channel}/port.sock"
    port_config = {"socket": socket_path, "packages": packages, "official_modules": official_names,
                   "max_bytes": MAX_TRANSFER_BYTES, "connect_timeout_s": PORT_CONNECT_S}
    config = {"secret": secrets.token_hex(16), "tree": trusted.workdir, "official": trusted.official_dir,
              "records": f"{out}/records.jsonl",
              "port": {"socket": socket_path, "packages": packages, "official_modules": official_names,
                       "tree": trusted.workdir, "port_tree": port.workdir, "max_bytes": MAX_TRANSFER_BYTES,
                       "accept_timeout_s": PORT_CONNECT_S}}
    (trusted_support / "config.json").write_text(json.dumps(config))
    os.chmod(trusted_support / "config.json", 0o644)
    port_result: list[CommandResult] = []
    port_start_error: list[BaseException] = []
    port_command = (f"python -P -B {shlex.quote(str(port_support / (SERVER_MODULE + '.py')))} "
                    f"{shlex.quote(json.dumps(port_config))}")
    port_env = {"PYTHONPATH": f"{port_support}:{port.workdir}", "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONNOUSERSITE": "1"}

    def serve() -> None:
        try:
            port.start()
        except BaseException as exc:  # raised in the caller's thread once the trusted process ended
            port_start_error.append(exc)
            port_result.append(CommandResult(-1, "", f"the port sandbox failed to start: {exc}", 0.0, False))
        finally:
            port_started.set()
        if not port_result and not trusted_done.is_set():
            try:
                port_result.append(port.run_test(port_command, timeout_s=timeout_s + PORT_CONNECT_S, env=port_env))
            except Exception as exc:  # the sandbox itself failed: reported with the run
                port_result.append(CommandResult(-1, "", f"the port sandbox failed: {exc}", 0.0, False))
        if port_result:
            _tell_trusted_the_port_is_gone(socket_path, port_result[0], trusted_done)

    # The trusted sandbox is on the critical path: it starts alone (two containers started at
    # once each take longer), and the port's starts beside the test's own start-up, which
    # reaches the port only when the test first imports it.
    trusted_done, port_started = threading.Event(), threading.Event()
    t0 = time.monotonic()
    trusted.start()
    seconds["sandbox_start_s"] = round(time.monotonic() - t0, 3)
    server = threading.Thread(target=serve, daemon=True)
    server.start()
    env = {"PYTHONPATH": f"{trusted_support}:{trusted.workdir}"
                         f"{_official_on_path(trusted.official_dir, set(official_names))}",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONNOUSERSITE": "1",
           "HARNESS_VERDICT_CONFIG": f"{trusted_support}/config.json", "TMPDIR": str(shared)}
    t0 = time.monotonic()
    try:
        run = run_parity_test(trusted, test, log_dir, timeout_s=timeout_s, python="python -P -B",
                              extra_args=f"-p {PLUGIN_MODULE} --basetemp={shlex.quote(str(shared / 'pytest'))}",
                              env=env, module=PYTEST_MODULE)
    except KeyboardInterrupt as stop:  # the cut-off log keeps what the port process printed too
        port.abort()
        server.join(_PORT_GRACE_S)
        if getattr(stop, "log_path", None) and port_result:
            _append_log(str(stop.log_path), [], port_result[0], [])
        raise
    finally:
        trusted_done.set()
        port_started.wait()  # a container being created now would outlive its close
        server.join(_PORT_GRACE_S)
        if server.is_alive():
            port.abort()
            server.join(_PORT_GRACE_S)
    if port_start_error:
        raise port_start_error[0]
    seconds["test_s"] = round(time.monotonic() - t0, 3)
    result = port_result[0] if port_result else None
    run, problems = judge_records(run, read_records(out / "records.jsonl"), result)
    return run, problems, result


def _mount_points(tree: Path, assets: list[tuple[str, Path]]) -> None:
    """The folders the assets are mounted on: the tree itself is mounted read-only."""
    for name, _ in assets:
        (tree / name).mkdir(parents=True, exist_ok=True)


def _tell_trusted_the_port_is_gone(socket_path: str, result: CommandResult, trusted_done: threading.Event) -> None:
    """When the port process ended without connecting, the trusted process would wait for it
    until its accept timeout: the harness takes the connection instead and says why. (Once
    the port has connected the trusted process listens no more: the connection is refused.)"""
    import socket
    import struct

    why = (result.stderr.strip() or result.stdout.strip())[-600:]
    hello = json.dumps({"refused": f"the port process ended (exit {result.exit_code}) before it connected: "
                                   f"{why}"}).encode()
    while not trusted_done.is_set():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(2)
            sock.connect(socket_path)
            sock.sendall(struct.pack("!II", len(hello), 0) + hello)  # one harness_wire frame
            return
        except FileNotFoundError:  # the trusted process has not opened its socket yet
            trusted_done.wait(0.2)
        except OSError:  # it listens no more
            return
        finally:
            sock.close()


def _run_unisolated(port_tree: Path, official: Any, repo: Path, run_id: str, assets: list[tuple[str, Path]],
                    new_executor: ExecutorFactory, executors: list[Any], test: str, log_dir: Path,
                    timeout_s: float, tmp: Path) -> tuple[Any, list[str], CommandResult | None]:
    """The agent's own test, on the port tree, in one new sandbox: no isolation."""
    from harness.sandbox.pytest_runner import run_parity_test

    _mount_points(port_tree, assets)
    ex = new_executor(CleanTree(port_tree, official, repo, run_id, assets))
    executors.append(ex)
    ex.start()
    env = {"PYTHONPATH": ex.workdir, "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "PYTHONNOUSERSITE": "1"}
    run = run_parity_test(ex, test, log_dir, timeout_s=timeout_s, python="python -P -B",
                          extra_args=f"--basetemp=/tmp/harness-pytest-{uuid.uuid4().hex[:6]}", env=env)
    note = ("parity evidence: the agent's own test, run without isolation (no base version of the test, and "
            "no person approved it)")
    return run.model_copy(update={"evidence": [note]}), [], None


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


def _append_log(path: str, problems: list[str], port: CommandResult | None, comparisons: list[str]) -> None:
    parts = []
    if comparisons:
        parts.append("--- comparisons measured by the harness ---\n" + "\n".join(comparisons))
    if port is not None and (port.stdout.strip() or port.stderr.strip()):
        parts.append(f"--- port process (exit {port.exit_code}) stdout ---\n{port.stdout}\n"
                     f"--- port process stderr ---\n{port.stderr}")
    if problems:
        parts.append("--- verdict checks ---\n" + "\n".join(problems))
    if not parts:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write("\n".join(parts) + "\n")
    except OSError:
        pass
