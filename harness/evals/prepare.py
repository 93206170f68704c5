"""Build a task's starting state from the example repo: setup applied and committed, packet written.

Layout of a prepared task directory (everything the run may see; gold and hidden tests are
never copied here):

    <dest>/example/...        the example root (the FastVideo-shaped repo + official references)
    <dest>/packet.json        the packet the agent gets (paths point into <dest>)
    <dest>/prepared.json      where things are, for the runner and graders
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.evals.tasks import Edit, Task, TaskError


@dataclass(frozen=True)
class Prepared:
    """A task's starting state on disk."""

    root: Path            # the prepared task directory
    example_root: Path    # the example root inside it
    repo: Path            # the git repo the agent works on
    official_dir: Path
    packet: Path
    parity_test: str      # repo-relative path of the packet's parity test
    base_commit: str

    def save(self) -> None:
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        (self.root / "prepared.json").write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, root: Path) -> "Prepared":
        data = json.loads((Path(root) / "prepared.json").read_text())
        paths = {"root", "example_root", "repo", "official_dir", "packet"}
        return cls(**{k: Path(v) if k in paths else v for k, v in data.items()})

    def relocated(self, new_root: Path) -> "Prepared":
        """The same state copied to `new_root` (paths rewritten, packet paths too)."""
        new_root = Path(new_root).resolve()

        def move(p: Path) -> Path:
            return new_root / p.relative_to(self.root)

        moved = Prepared(
            root=new_root, example_root=move(self.example_root), repo=move(self.repo),
            official_dir=move(self.official_dir), packet=move(self.packet),
            parity_test=self.parity_test, base_commit=self.base_commit,
        )
        text = moved.packet.read_text().replace(str(self.root), str(new_root))
        moved.packet.write_text(text)
        moved.save()
        return moved


def write_fixture(name: str, dest: Path):
    """Write the named example (only `tinyvid` exists) and return its ExampleRepo."""
    from harness.evals import fixtures

    if name != "tinyvid":
        raise TaskError(f"unknown fixture {name!r}; the bundled example is 'tinyvid'")
    return fixtures.write_example_repo(Path(dest))


def _git(repo: Path, *args: str) -> str:
    import git

    from harness.sandbox.host_git import run_git

    try:
        return run_git(repo, *args).strip()
    except git.GitCommandError as exc:
        raise TaskError(f"git {' '.join(args)} failed in {repo}: {str(exc.stderr).strip()}") from None


def apply_edits(root: Path, edits: list[Edit], where: str) -> None:
    """Exact, unique search/replace edits; any miss is an error naming the file."""
    for edit in edits:
        path = root / edit.path
        if not path.is_file():
            raise TaskError(f"{where}: {edit.path} does not exist in the example")
        text = path.read_text()
        count = text.count(edit.old)
        if count != 1:
            raise TaskError(f"{where}: {edit.path}: the text to replace occurs {count} times, need exactly 1")
        path.write_text(text.replace(edit.old, edit.new))


def apply_patch(root: Path, patch: Path, where: str) -> None:
    import git

    from harness.sandbox.host_git import run_git

    try:
        run_git(root, "apply", "--whitespace=nowarn", str(patch))
    except git.GitCommandError as exc:
        raise TaskError(f"{where}: {patch.name} does not apply: {str(exc.stderr).strip()}") from None


def seeded_bug(bug_id: str):
    from harness.evals.fixtures.bugs import SEEDED_BUGS

    for bug in SEEDED_BUGS:
        if bug.id == bug_id:
            return bug
    raise TaskError(f"no seeded bug {bug_id!r}; known: {sorted(b.id for b in SEEDED_BUGS)}")


def _component_packet(example: Any, component: str, mode: str) -> Path:
    """The example's generated packet for this component and mode."""
    from harness.evals.fixtures import packet_key

    key = packet_key(component, mode)
    if key not in example.packets:
        raise TaskError(f"the example has no packet {key!r}; it has {sorted(example.packets)}")
    return Path(example.packets[key])


def deep_merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def prepare_task(task: Task, fixture_root: Path, fixture: Any, dest: Path) -> Prepared:
    """Copy a written example to `dest` and put it in the task's starting state.

    `fixture` is the ExampleRepo that `write_fixture` returned for `fixture_root`.
    """
    dest = Path(dest).resolve()
    if dest.exists():
        raise TaskError(f"{dest} already exists; will not overwrite it")
    spec, where = task.spec, f"task {task.id}"
    example_root = dest / "example"
    shutil.copytree(fixture_root, example_root, symlinks=True)
    rel = lambda p: Path(p).resolve().relative_to(Path(fixture_root).resolve())  # noqa: E731
    repo = example_root / rel(fixture.repo)
    official = example_root / rel(fixture.official_dir)

    from harness.evals.fixtures.gold import apply_gold

    for component in spec.setup.apply_gold:
        apply_gold(repo, component)
    if spec.setup.seeded_bug:
        bug = seeded_bug(spec.setup.seeded_bug)
        apply_edits(repo, [Edit(path=bug.path, old=bug.old, new=bug.new)], f"{where}: seeded bug {bug.id}")
    if spec.setup.patch:
        apply_patch(example_root, task.file(spec.setup.patch), where)
    for dest_rel, src_rel in spec.setup.files.items():
        target = example_root / dest_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(task.file(src_rel), target)
    apply_edits(example_root, spec.setup.edits, where)
    for rel_path in spec.setup.remove:
        target = example_root / rel_path
        if not target.exists():
            raise TaskError(f"{where}: setup.remove: {rel_path} does not exist")
        shutil.rmtree(target) if target.is_dir() else target.unlink()

    _git(repo, "add", "-A")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "-c", "user.name=harness-eval", "-c", "user.email=eval@harness.invalid",
             "commit", "-q", "--no-verify", "-m", f"eval task {task.id}: starting state")
    base = _git(repo, "rev-parse", "HEAD")

    src_packet = example_root / rel(_component_packet(fixture, spec.packet.component, spec.mode))
    data = yaml.safe_load(src_packet.read_text())
    if not isinstance(data, dict):
        raise TaskError(f"{where}: packet {src_packet.name} is not a mapping")
    overrides = deep_merge(spec.packet.overrides, {"mode": spec.mode})
    data = deep_merge(data, overrides)
    text = json.dumps(data, indent=2).replace(str(Path(fixture_root).resolve()), str(example_root))
    packet = dest / "packet.json"
    packet.write_text(text)
    prepared = Prepared(
        root=dest, example_root=example_root, repo=repo, official_dir=official, packet=packet,
        parity_test=str(data.get("parity_test", "")), base_commit=base,
    )
    prepared.save()
    return prepared


def copy_prepared(template: Prepared, dest: Path) -> Prepared:
    """A private copy of a prepared task for one attempt (each attempt owns its repo)."""
    dest = Path(dest).resolve()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(template.root, dest, symlinks=True)
    return template.relocated(dest)
