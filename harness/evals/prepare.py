"""Build a task's starting state from the example repo: setup applied and committed, packet written.

Layout of a prepared task directory (everything the run may see; gold and hidden tests are
never copied here):

    <dest>/example/...        the example root (the FastVideo-shaped repo + official references)
    <dest>/packet.json        the packet the agent gets (paths point into <dest>)
    <dest>/prepared.json      where things are, for the runner and graders

A mined task (`source:`) is prepared from its suite's repository instead: `<dest>/repo` is a
self-contained clone of the base commit, with the official reference copied where the test
looks for it (a git-ignored folder of the repo, or next to it). An impossible twin's altered
parity test is committed on top of its starting state, so it is the base the verdict trusts.
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
    official_dir: Path | None  # None: the task's official reference is a library, or absent here
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
        return cls(**{k: Path(v) if k in paths and v is not None else v for k, v in data.items()})

    def relocated(self, new_root: Path) -> "Prepared":
        """The same state copied to `new_root` (paths rewritten, packet paths too)."""
        new_root = Path(new_root).resolve()

        def move(p: Path) -> Path:
            return new_root / p.relative_to(self.root)

        official = self.official_dir
        moved = Prepared(
            root=new_root, example_root=move(self.example_root), repo=move(self.repo),
            official_dir=move(official) if official and official.is_relative_to(self.root) else official,
            packet=move(self.packet),
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

    src_packet = example_root / rel(_component_packet(fixture, spec.packet.component, spec.mode))
    data = yaml.safe_load(src_packet.read_text())
    if not isinstance(data, dict):
        raise TaskError(f"{where}: packet {src_packet.name} is not a mapping")
    overrides = deep_merge(spec.packet.overrides, {"mode": spec.mode})
    data = deep_merge(data, overrides)
    if spec.twin is not None:
        alter_parity_test(task, repo, str(data.get("parity_test", "")))
    base = _commit_all(repo, f"eval task {task.id}: starting state")
    text = json.dumps(data, indent=2).replace(str(Path(fixture_root).resolve()), str(example_root))
    packet = dest / "packet.json"
    packet.write_text(text)
    prepared = Prepared(
        root=dest, example_root=example_root, repo=repo, official_dir=official, packet=packet,
        parity_test=str(data.get("parity_test", "")), base_commit=base,
    )
    prepared.save()
    return prepared


def _commit_all(repo: Path, message: str) -> str:
    _git(repo, "add", "-A")
    if _git(repo, "status", "--porcelain"):
        _git(repo, "-c", "user.name=harness-eval", "-c", "user.email=eval@harness.invalid",
             "commit", "-q", "--no-verify", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def alter_parity_test(task: Task, repo: Path, parity_test: str) -> None:
    """An impossible twin's expectation: the parity test's expected side altered in place."""
    from harness.evals.variants import VariantError, impossible_variant

    path = Path(repo) / parity_test
    if not path.is_file():
        raise TaskError(f"task {task.id}: twin of {task.spec.twin.of}: no parity test {parity_test}")
    try:
        path.write_text(impossible_variant(path.read_text(), task.spec.twin.factor))
    except VariantError as exc:
        raise TaskError(f"task {task.id}: {exc}") from None


def prepare_repo_task(task: Task, dest: Path) -> Prepared:
    """A mined task's starting state: a clone of its base commit that holds every object it
    needs (no link back to the suite or the user's checkout), the official reference copied
    where its tests look, and the packet."""
    dest = Path(dest).resolve()
    if dest.exists():
        raise TaskError(f"{dest} already exists; will not overwrite it")
    source, where = task.spec.source, f"task {task.id}"
    suite_repo = (task.dir / source.repo).resolve()
    repo = dest / "repo"
    dest.mkdir(parents=True)
    _git(dest, "-c", "protocol.file.allow=always", "clone", "-q", "--no-hardlinks", "--single-branch",
         "--branch", source.base, f"file://{suite_repo}", str(repo))
    _git(repo, "remote", "remove", "origin")
    if _git(repo, "rev-parse", "HEAD") != source.base_commit:
        raise TaskError(f"{where}: branch {source.base} of {suite_repo} is not the recorded base "
                        f"{source.base_commit[:12]}; rebuild the suite")
    official, ignored = None, []
    if source.official is not None and Path(source.official.path).is_dir():
        official = (repo if source.official.in_checkout else dest) / source.official.name
        shutil.copytree(source.official.path, official, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        if source.official.in_checkout:
            ignored.append(source.official.name)
    for name, path in source.weights.items():  # large: linked, and mounted read-only by the sandboxes
        if Path(path).is_dir():
            (repo / name).symlink_to(Path(path).resolve(), target_is_directory=True)
            ignored.append(name)
    with open(repo / ".git" / "info" / "exclude", "a") as fh:
        fh.writelines(f"/{name}/\n/{name}\n" for name in ignored)
    data = json.loads(task.file(source.packet).read_text())
    packet_data = data.get("component_context", data)
    if official is not None:
        packet_data["official_ref_dir"] = source.official.name if source.official.in_checkout else str(official)
    if task.spec.twin is not None:
        alter_parity_test(task, repo, packet_data["parity_test"])
    base = _commit_all(repo, f"eval task {task.id}: starting state")
    packet = dest / "packet.json"
    packet.write_text(json.dumps(packet_data, indent=2))  # flat, as every prepared packet is
    prepared = Prepared(root=dest, example_root=dest, repo=repo, official_dir=official, packet=packet,
                        parity_test=str(packet_data.get("parity_test", "")), base_commit=base)
    prepared.save()
    return prepared


def copy_prepared(template: Prepared, dest: Path) -> Prepared:
    """A private copy of a prepared task for one attempt (each attempt owns its repo)."""
    dest = Path(dest).resolve()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(template.root, dest, symlinks=True)
    return template.relocated(dest)
