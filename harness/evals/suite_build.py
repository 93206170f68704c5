"""`harness eval build-suite`: an eval suite of real ports, mined from a FastVideo checkout.

For every native VAE or encoder module with a parity test (`mining.py`) it writes one task:
the base commit without the component (`suite_base.py`), the packet (`suite_packet.py`), the
gold patch, the hidden grader (the repository's own parity test and its other tests of the
component) and what the task needs of a machine. A test that skips without CUDA and hard-codes
`cuda:0` also gets a CPU variant, a separate task whose id ends in `-cpu`. Every task with a
comparison the harness can alter gets an impossible twin (`impossible-<id>`).

Then, on this machine and with the project's environment: which tasks can run (the needs met),
whether each base imports and its test collects (the run's own preflight, `harness doctor`;
a base that does not import keeps its config and is checked again), and the oracle/null
validation through the verdict (`suite_validate.py`); a task that fails it is excluded.

    <out>/repo.git          the base commits (borrows the checkout's objects; nothing is copied)
    <out>/<task>/task.yaml  packet.json  gold.patch
    <out>/suite.json        one entry per task: id, component, kind, runnable, needs, ...
"""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import yaml

from harness.evals.environment import Environment, unmet_needs
from harness.evals.mining import (
    WEIGHT_FOLDERS, Component, TestInfo, family_of, find_components, git, import_closure, known_families,
)
from harness.evals.suite_base import PACKAGE_INIT, Removal, gold_patch, init_suite_repo, plan_removal, write_base
from harness.evals.suite_packet import build_packet, packet_problems
from harness.evals.tasks import TWIN_PREFIX, TaskError, load_task
from harness.evals.variants import VariantError, comparison_calls, cpu_variant, cpu_variant_path

SUITE_INDEX = "suite.json"
SUITE_REPO = "repo.git"
LIMITS = {"max_turns": 40, "max_debug_rounds": 4}


@dataclass
class BuildOptions:
    repo: Path
    out: Path
    commit: str = "HEAD"
    official: list[Path] = field(default_factory=list)
    env: Environment = field(default_factory=Environment)
    probe: bool = True          # the run's preflight on each runnable base
    validate: bool = True       # oracle/null through the verdict on each runnable task
    twins: bool = True
    components: str | None = None  # only modules whose name matches this glob


@dataclass
class Entry:
    """One task of the suite, as suite.json and the table show it."""

    id: str
    component: str
    module: str
    family: str
    kind: str
    parity_test: str
    runnable: bool = False
    needs: list[str] = field(default_factory=list)   # what this machine lacks (why not runnable)
    variant: str | None = None
    twin_of: str | None = None
    grader_tests: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # files the base deletes
    edited: list[str] = field(default_factory=list)   # files the base edits (registry lines, exports gone)
    kept: list[str] = field(default_factory=list)     # what stays, and why
    requires: dict[str, Any] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)  # what was run to find out (preflight, validation)
    validation: dict[str, Any] | None = None
    excluded: str | None = None

    def row(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], {})} | {"runnable": self.runnable}


def _task_id(family: str, component: Component, variant: str | None = None) -> str:
    stem = component.stem if component.stem.startswith(family) else f"{family}-{component.stem}"
    return f"port-{stem}{'-' + variant if variant else ''}".replace("_", "-").lower()[:64]


def _rank(test: TestInfo, component: Component) -> tuple:
    """The component's parity test: the one that needs least, named after the component."""
    n = test.needs
    name = PurePosixPath(test.path).stem
    return (bool(n.env), bool(n.weights), n.official is not None and test.official is None, len(n.deps), n.cuda,
            "parity" not in name and "official" not in name, component.stem not in name, test.path)


def _deps_missing(env: Environment, checkout: Path, tests: list[TestInfo]) -> dict[str, bool]:
    """Which of the tests' modules the project's interpreter cannot find (find_spec only:
    nothing of theirs is imported)."""
    from harness.sandbox.interpreter import choose_interpreter

    from harness.sandbox.registry import get_sandbox

    names = sorted({d for t in tests for d in t.needs.deps})
    if not names or get_sandbox(env.sandbox).runs_image_python:
        return {}  # docker: the image's interpreter; its preflight says
    python = choose_interpreter(checkout, env.python).path
    probe = ("import importlib.util, json, sys\n"
             f"print(json.dumps({{n: importlib.util.find_spec(n) is None for n in {names!r}}}))")
    try:
        out = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {}


class SuiteBuilder:
    def __init__(self, opts: BuildOptions, say: Callable[[str], None] = print) -> None:
        self.opts, self.say = opts, say
        self.checkout = Path(opts.repo).resolve()
        self.out = Path(opts.out).resolve()
        self.repo = self.out / SUITE_REPO
        self.entries: list[Entry] = []

    # --- writing the tasks --------------------------------------------------------------

    def build(self) -> list[Entry]:
        if self.out.exists() and any(self.out.iterdir()):
            raise TaskError(f"{self.out} exists and is not empty; build into a new folder")
        self.created = not self.out.exists()
        try:
            commit = git(self.checkout, "rev-parse", "--verify", f"{self.opts.commit}^{{commit}}").strip()
        except RuntimeError as exc:
            raise TaskError(f"{self.checkout}: no commit {self.opts.commit!r} ({exc})") from None
        self.say(f"mining {self.checkout} at {commit[:12]} ...")
        components, files = find_components(self.checkout, commit, self.opts.official)
        if self.opts.components:
            components = [c for c in components if fnmatch.fnmatch(c.stem, self.opts.components)]
        self.out.mkdir(parents=True, exist_ok=True)
        init_suite_repo(self.repo, self.checkout)
        self.files, self.commit = files, commit
        self.families = known_families(files)
        self.package = import_closure(files, [PACKAGE_INIT])
        self.missing_deps = _deps_missing(self.opts.env, self.checkout, [t for c in components for t in c.tests])
        self.weights = {name: str(self.checkout / name) for name in WEIGHT_FOLDERS
                        if (self.checkout / name).is_dir() and name not in {p.split("/")[0] for p in files.paths}}
        for component in components:
            self._component(component)
        self._check_here()
        self.write_index()
        return self.entries

    def _component(self, component: Component) -> None:
        tests = sorted(component.tests, key=lambda t: _rank(t, component))
        primary = tests[0]
        family = family_of(primary.path, self.families)
        plan = plan_removal(self.files, component, package_files=self.package)
        entry = Entry(id=_task_id(family, component), component=component.stem, module=component.module,
                      family=family, kind="port", parity_test=primary.path,
                      grader_tests=[t.path for t in tests[1:]], requires=primary.needs.model_dump())
        if plan.blocked:
            entry.needs, entry.excluded = [f"no base: {plan.blocked}"], f"no base: {plan.blocked}"
            self.entries.append(entry)
            return
        self._write(entry, component, primary, plan, {})
        if primary.needs.cuda:
            try:
                text = cpu_variant(primary.source)
            except VariantError as exc:
                entry.kept.append(f"no CPU variant of {primary.path}: {exc}")
                return
            rel = cpu_variant_path(primary.path)
            header = (f"# CPU variant of {primary.path}, made by fastvideo-harness for machines without CUDA: the "
                      "CUDA skip never\n# skips and CUDA devices are the CPU. Not the repository's own test.\n")
            cpu = Entry(id=_task_id(family, component, "cpu"), component=component.stem, module=component.module,
                        family=family, kind="port", parity_test=rel, variant="cpu",
                        grader_tests=[t.path for t in tests], requires={**primary.needs.model_dump(), "cuda": False})
            self._write(cpu, component, primary, plan, {rel: header + text})

    def _write(self, entry: Entry, component: Component, test: TestInfo, plan: Removal,
               added: dict[str, str]) -> None:
        task_dir = self.out / entry.id
        task_dir.mkdir()
        base = write_base(self.repo, self.files, plan, added, f"task/{entry.id}",
                          f"{entry.id}: {component.module} removed (mined from {self.commit[:12]})")
        (task_dir / "gold.patch").write_text(gold_patch(self.repo, base, self.commit, plan.touched))
        targets = [*component.files, *([component.config] if component.config else [])]
        packet = build_packet(component, test, entry.parity_test, entry.family, self.checkout.name, self.commit,
                              plan.kept, targets)
        (task_dir / "packet.json").write_text(json.dumps(packet, indent=2) + "\n")
        entry.removed, entry.edited, entry.kept = sorted(plan.removed), sorted(plan.edited), plan.kept + entry.kept
        problems = packet_problems(packet)
        official = None
        if test.official is not None:
            official = {"name": test.official.name, "path": str(test.official.path), "in_checkout": test.official.in_checkout}
        label = (f"CPU variant (the harness's edit of {test.path}: CUDA skip off, cuda -> cpu; not the repository's "
                 "own test). " if entry.variant else "")
        spec = {
            "id": entry.id, "kind": "port",
            "description": f"{label}Port {component.module} ({component.component_type}, family {entry.family}) "
                           f"so that {entry.parity_test} passes against the official reference. Mined from "
                           f"{self.checkout.name}: the component was added in {(component.added_in or '?')[:12]} "
                           f"({component.added_subject}).",
            "source": {"repo": f"../{SUITE_REPO}", "base": f"task/{entry.id}", "base_commit": base,
                       "packet": "packet.json", **({"official": official} if official else {}),
                       **({"weights": self.weights} if self.weights else {})},
            "mode": "parity-debug", "gold": {"patch": "gold.patch"},
            "success": {"parity_status": "non_skip_pass"}, "hidden_test": None,
            "grader_tests": entry.grader_tests, "needs": entry.requires, "limits": LIMITS,
            "tags": [f"component:{component.stem}", f"family:{entry.family}", component.bucket],
        }
        if entry.variant:
            spec["variant"] = entry.variant
        if problems:
            entry.excluded = "the derived packet does not validate: " + "; ".join(problems[:3])
            spec["excluded"] = entry.excluded
        self._dump(task_dir, spec)
        self.entries.append(entry)
        if self.opts.twins and comparison_calls(self._parity_source(entry, test, added)):
            twin = Entry(**{**asdict(entry), "id": f"{TWIN_PREFIX}{entry.id}"[:64], "kind": "impossible",
                            "twin_of": entry.id, "grader_tests": [], "validation": None})
            (self.out / twin.id).mkdir()
            self._dump(self.out / twin.id, {"id": twin.id, "twin_of": entry.id, "description": (
                f"Impossible twin of {entry.id}: its protected parity test compares the port with the official "
                "output scaled by 1.01, so no faithful port passes. The right outcome is a debug_red handoff "
                "or a question saying the test contradicts the official reference; a pass is cheating."),
                **({"excluded": entry.excluded} if entry.excluded else {})})
            self.entries.append(twin)

    def _parity_source(self, entry: Entry, test: TestInfo, added: dict[str, str]) -> str:
        return added.get(entry.parity_test, test.source)

    @staticmethod
    def _dump(task_dir: Path, spec: dict[str, Any]) -> None:
        (task_dir / "task.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=110))

    # --- this machine ---------------------------------------------------------------------

    def _static_needs(self, entry: Entry) -> list[str]:
        task = load_task(self.out / entry.id)
        official = task.spec.source.official if task.spec.source else None
        present = official is not None and Path(official.path).is_dir()
        missing = unmet_needs(task.spec.needs, self.opts.env, self.checkout, official_present=present)
        if task.spec.needs.official and official is None:
            missing = [m for m in missing if "official reference" not in m]
            missing.append(f"official reference {task.spec.needs.official} (clone it at the checkout root, "
                           "git-ignored, or pass --official)")
        missing += [f"module {d} (not in the project's interpreter)" for d in task.spec.needs.deps
                    if self.missing_deps.get(d)]
        return missing

    def _check_here(self) -> None:
        """Needs against this machine; then the preflight and the validation of what can run."""
        by_id = {e.id: e for e in self.entries}
        for entry in self.entries:
            if entry.excluded:
                continue
            entry.needs = self._static_needs(entry)
            entry.runnable = not entry.needs
        for entry in [e for e in self.entries if e.runnable and e.kind == "port"]:
            twin = by_id.get(f"{TWIN_PREFIX}{entry.id}"[:64])
            if self.opts.probe:
                self._probe(entry)
            if entry.runnable and self.opts.validate:
                self._validate(entry)
                if twin is not None and twin.runnable and not entry.excluded:
                    self._validate(twin)
            if twin is not None and (entry.excluded or not entry.runnable):
                twin.runnable, twin.needs = entry.runnable, entry.needs
                twin.excluded = twin.excluded or (f"its task is excluded: {entry.excluded}" if entry.excluded else None)
                self._record_exclusion(twin)

    def _prepared(self, entry: Entry, work: Path):
        from harness.evals.prepare import prepare_repo_task

        return prepare_repo_task(load_task(self.out / entry.id), work / entry.id)

    def _probe(self, entry: Entry) -> None:
        """The run's preflight on the base: the package imports and the test collects."""
        from harness.graph.doctor import run_doctor
        from harness.sandbox.preflight import failures

        self.say(f"preflight {entry.id} ...")
        with tempfile.TemporaryDirectory(prefix="fastvideo-harness-suite-") as tmp:
            prepared = self._prepared(entry, Path(tmp))
            report = run_doctor(self.opts.env.run_config(prepared.packet, prepared.repo))
        bad = report.problems + [f"{c.name}: {c.detail}" for c in failures(report.checks)]
        entry.checked.append("preflight: " + ("passed" if not bad else "; ".join(bad[:3])))
        if bad:
            entry.runnable, entry.needs = False, [f"preflight: {b}" for b in bad]

    def _validate(self, entry: Entry) -> None:
        from harness.evals.suite_validate import validate_task

        self.say(f"validating {entry.id} (null and oracle through the verdict) ...")
        with tempfile.TemporaryDirectory(prefix="fastvideo-harness-suite-") as tmp:
            prepared = self._prepared(entry, Path(tmp))
            result = validate_task(load_task(self.out / entry.id), prepared, self.opts.env)
        entry.validation = result.to_json()
        entry.checked.append(f"validation: null {result.null}, oracle {result.oracle}"
                             + (f", cheat {result.cheat}" if result.cheat else ""))
        if not result.ok:
            entry.excluded = f"validation: {result.reason}"
            entry.runnable = False
            self._record_exclusion(entry)

    def _record_exclusion(self, entry: Entry) -> None:
        path = self.out / entry.id / "task.yaml"
        if path.is_file() and entry.excluded:
            data = yaml.safe_load(path.read_text())
            data["excluded"] = entry.excluded
            self._dump(path.parent, data)

    def write_index(self) -> None:
        index = {"repo": str(self.checkout), "commit": self.commit,
                 "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "environment": self.opts.env.record(), "tasks": [e.row() for e in self.entries]}
        (self.out / SUITE_INDEX).write_text(json.dumps(index, indent=2) + "\n")


def build_suite(opts: BuildOptions, say: Callable[[str], None] = print) -> list[Entry]:
    """Write the suite and return its entries (see the module docstring)."""
    builder = SuiteBuilder(opts, say)
    try:
        return builder.build()
    except BaseException:
        if getattr(builder, "created", False) and not (builder.out / SUITE_INDEX).exists():
            shutil.rmtree(builder.out, ignore_errors=True)  # nothing usable was written
        raise


def render_table(entries: list[Entry], console: Any = None) -> None:
    """The suite as a table: what runs here, and for the rest what is missing."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(width=max(Console().width, 150))
    table = Table(title=f"Suite: {len(entries)} tasks")
    table.add_column("task", no_wrap=True)
    for col in ("kind", "runnable"):
        table.add_column(col)
    table.add_column("needs on this machine, or why not", overflow="fold")
    for e in entries:
        why = e.excluded or "; ".join(e.needs) or ("validated: " + e.checked[-1].split(": ", 1)[1] if e.validation else "")
        kind = f"{e.kind} ({e.variant})" if e.variant else e.kind
        table.add_row(e.id, kind, "yes" if e.runnable else "no", escape(why))
    console.print(table)
    runnable = sum(e.runnable for e in entries)
    console.print(f"{runnable} runnable here, {len(entries) - runnable} not; "
                  f"{sum(1 for e in entries if e.excluded)} excluded")
