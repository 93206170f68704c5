"""Find the port tasks a FastVideo checkout holds: every native VAE or encoder module that a
parity test under `tests/local_tests/` exercises, read from a commit (never the working tree)
and its history.

A test exercises a module when it imports it, names its class (`FASTVIDEO_CLASS = "..."`), names
a registry architecture that resolves to it, or (weakest, used only when nothing stronger is
there) imports its config. The module's files are the module and the siblings it imports that
were added in the same commit (the component's commit); what each test needs of a machine
(CUDA, the official reference, its modules, weights, opt-in variables) is read from its code.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from harness.evals.tasks import Needs
from harness.evals.variants import comparison_calls, cuda_uses

BUCKETS = {"vaes": "vae", "audio": "vae", "encoders": "encoder"}
MODEL_ROOT = "fastvideo/models"
CONFIG_ROOT = "fastvideo/configs/models"
REGISTRY = "fastvideo/models/registry.py"
TESTS_ROOT = "tests/local_tests/"
# Tests of whole pipelines, loaders and wiring are not a component's parity test.
NOT_PARITY = re.compile(r"pipeline|smoke|registry|conversion|loader|packing|scheduler|tokenizer|preflight|benchmark|train")
# Folders of tests/local_tests named by bucket or purpose rather than by model family.
GENERIC_TEST_DIRS = {"vaes", "encoders", "transformers", "models", "pipelines", "schedulers", "helpers", "audio"}
WEIGHT_CALLS = {"hf_hub_download", "snapshot_download", "from_pretrained", "download_components", "load_file",
                "safe_open", "load_state_dict_from_url"}
WEIGHT_FOLDERS = ("official_weights", "converted_weights")
HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z][\w.-]*$")
NOT_IMPORTS = {"fastvideo", "tests", "pytest", "torch", "__future__", "conftest"}


@dataclass(frozen=True)
class OfficialFolder:
    """A candidate official reference: a git-ignored folder at the checkout root, or one given."""

    name: str
    path: Path
    packages: tuple[str, ...]
    in_checkout: bool


@dataclass
class TestInfo:
    path: str
    source: str
    strong: set[str] = field(default_factory=set)   # component modules it imports or names
    weak: set[str] = field(default_factory=set)     # modules whose config it imports
    needs: Needs = field(default_factory=Needs)
    official: OfficialFolder | None = None
    official_env: list[str] = field(default_factory=list)  # the variables it reads the reference from
    official_symbols: dict[str, list[str]] = field(default_factory=dict)  # official module -> names

    def modules(self) -> set[str]:
        return self.strong or self.weak


@dataclass
class Component:
    module: str                      # fastvideo/models/vaes/oobleck.py
    bucket: str
    files: list[str]                 # the native files (module + same-commit siblings it imports)
    config: str | None               # its config module, when there is one
    classes: list[str]
    registry_archs: list[str]        # registry architectures that resolve to it
    added_in: str | None = None      # the commit that added the module
    added_subject: str = ""
    tests: list[TestInfo] = field(default_factory=list)

    @property
    def stem(self) -> str:
        return PurePosixPath(self.module).stem

    @property
    def component_type(self) -> str:
        return BUCKETS[self.bucket]


# ----- reading a commit ------------------------------------------------------------------------


def git(repo: Path, *args: str, input: str | None = None) -> str:
    from harness.sandbox.host_git import git_argv, host_env

    result = subprocess.run(git_argv(*args), cwd=repo, env=host_env(), input=input, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo}: {result.stderr.strip()[-500:]}")
    return result.stdout


class CommitFiles:
    """The files of one commit, read in one batch (absent blobs, as in a partial clone, are skipped)."""

    def __init__(self, repo: Path, commit: str) -> None:
        self.repo, self.commit = Path(repo), commit
        self.entries: dict[str, tuple[str, str]] = {}  # path -> (mode, blob)
        for line in git(self.repo, "ls-tree", "-r", "-z", commit).split("\0"):
            if "\t" in line:
                meta, path = line.split("\t", 1)
                mode, kind, sha = meta.split()
                if kind == "blob":
                    self.entries[path] = (mode, sha)
        self._text: dict[str, str | None] = {}
        self._trees: dict[str, ast.Module | None] = {}

    @property
    def paths(self) -> list[str]:
        return sorted(self.entries)

    def read_many(self, paths: list[str]) -> None:
        wanted = [p for p in paths if p in self.entries and p not in self._text]
        if not wanted:
            return
        from harness.sandbox.host_git import git_argv, host_env

        proc = subprocess.run(git_argv("cat-file", "--batch"), cwd=self.repo, env=host_env(),
                              input="".join(self.entries[p][1] + "\n" for p in wanted).encode(), capture_output=True)
        data, at = proc.stdout, 0
        for path in wanted:
            end = data.index(b"\n", at)
            header = data[at:end].split()
            if len(header) < 3 or header[1] == b"missing":
                self._text[path], at = None, end + 1
                continue
            size = int(header[2])
            self._text[path] = data[end + 1:end + 1 + size].decode("utf-8", errors="replace")
            at = end + 1 + size + 1

    def read(self, path: str) -> str | None:
        self.read_many([path])
        return self._text.get(path)

    def tree(self, path: str) -> ast.Module | None:
        if path not in self._trees:
            self._trees[path] = _parse(self.read(path))
        return self._trees[path]

    def missing_blobs(self) -> list[str]:
        """Paths whose blob the object store lacks (a partial clone's large media)."""
        listing = git(self.repo, "cat-file", "--batch-check", input="".join(s + "\n" for _, s in self.entries.values()))
        absent = {line.split()[0] for line in listing.splitlines() if line.endswith(" missing")}
        return sorted(p for p, (_, sha) in self.entries.items() if sha in absent)


@dataclass
class History:
    """Which commit first added each model file, read in one pass over the history."""

    added_by: dict[str, tuple[str, str]] = field(default_factory=dict)  # path -> (commit, subject)
    adds: dict[str, set[str]] = field(default_factory=dict)             # commit -> model files it added

    @classmethod
    def read(cls, repo: Path, commit: str, under: str = MODEL_ROOT) -> "History":
        out = git(repo, "log", "--diff-filter=A", "--no-renames", "--name-only", "--format=%x00%H%x09%s", commit,
                  "--", under)
        history = cls()
        for block in out.split("\0")[1:]:  # newest first: the last add seen is the first one
            head, _, names = block.partition("\n")
            sha, _, subject = head.partition("\t")
            paths = {n for n in names.split("\n") if n}
            history.adds[sha] = paths
            for path in paths:
                history.added_by[path] = (sha, subject)
        return history


# ----- the checkout's model modules ------------------------------------------------------------


def _parse(source: str | None) -> ast.Module | None:
    if source is None:
        return None
    try:
        return ast.parse(source)
    except SyntaxError:
        return None


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def imports_in(tree: ast.AST, here: str) -> list[tuple[str, list[str]]]:
    """(module, names) for every import in the file, relative imports resolved against `here`."""
    package = _module_name(here).rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            out.append((base, [alias.name for alias in node.names]))
    return out


def registry_entries(files: CommitFiles) -> dict[str, tuple[str, int]]:
    """Architecture name -> (module path, line) from the registry's `"Arch": ("bucket", "mod", "Cls")`."""
    tree = _parse(files.read(REGISTRY))
    out: dict[str, tuple[str, int]] = {}
    for node in ast.walk(tree) if tree else []:
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if (isinstance(key, ast.Constant) and isinstance(key.value, str) and isinstance(value, ast.Tuple)
                        and len(value.elts) == 3 and all(isinstance(e, ast.Constant) for e in value.elts)):
                    bucket, mod, _ = (e.value for e in value.elts)
                    out[key.value] = (f"{MODEL_ROOT}/{bucket}/{mod}.py", key.lineno)
    return out


def model_modules(files: CommitFiles) -> dict[str, list[str]]:
    """Component modules (VAE, audio and encoder buckets) -> the classes they define."""
    candidates = [p for p in files.paths if p.endswith(".py") and PurePosixPath(p).parent.name in BUCKETS
                  and str(PurePosixPath(p).parent.parent) == MODEL_ROOT and not p.endswith("__init__.py")]
    files.read_many(candidates)
    out = {}
    for path in candidates:
        tree = _parse(files.read(path))
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)] if tree else []
        if classes:
            out[path] = classes
    return out


# ----- official references ---------------------------------------------------------------------


def _packages(folder: Path) -> tuple[str, ...]:
    found = set()
    for parent in (folder, folder / "src"):
        if parent.is_dir():
            for child in parent.iterdir():
                if child.is_dir() and (child / "__init__.py").is_file():
                    found.add(child.name)
    return tuple(sorted(found))


def official_folders(checkout: Path, extra: list[Path]) -> list[OfficialFolder]:
    """Git-ignored folders at the checkout root (where FastVideo's tests find official clones)
    and the folders given."""
    out = []
    listing = git(checkout, "ls-files", "--others", "--ignored", "--exclude-standard", "--directory", "-z")
    for entry in listing.split("\0"):
        name = entry.rstrip("/")
        path = checkout / name
        if name and "/" not in name and path.is_dir() and name not in WEIGHT_FOLDERS and not name.startswith("."):
            out.append(OfficialFolder(name, path.resolve(), _packages(path), True))
    for path in extra:
        path = Path(path).resolve()
        inside = path.is_relative_to(checkout.resolve())
        out.append(OfficialFolder(path.name, path, _packages(path), inside))
    return out


# ----- one test ----------------------------------------------------------------------------------


def _strings(tree: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _call_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _env_lookups(node: ast.AST) -> list[tuple[str, ast.Call]]:
    out = []
    for n in ast.walk(node):
        if isinstance(n, ast.Call) and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str):
            func = n.func
            name = ast.unparse(func) if isinstance(func, (ast.Attribute, ast.Name)) else ""
            if name in ("os.environ.get", "os.getenv", "environ.get", "getenv"):
                out.append((n.args[0].value, n))
    return out


def _gates(tree: ast.AST) -> list[str]:
    """Opt-in variables: `if os.environ.get("X") != "1": pytest.skip(...)` and skipif on them."""
    gates = []
    for node in ast.walk(tree):
        condition = None
        if isinstance(node, ast.If) and any(isinstance(s, ast.Expr) and isinstance(s.value, ast.Call)
                                            and _call_name(s.value) == "skip" for s in node.body):
            condition = node.test
        elif isinstance(node, ast.Call) and _call_name(node) == "skipif" and node.args:
            condition = node.args[0]
        if condition is None:
            continue
        for compare in [n for n in ast.walk(condition) if isinstance(n, ast.Compare)]:
            for name, _ in _env_lookups(compare):
                wanted = next((c.value for c in compare.comparators if isinstance(c, ast.Constant)), "1")
                gates.append(f"{name}={wanted}")
    return sorted(set(gates))


def _official_location(tree: ast.AST) -> tuple[list[str], list[str]]:
    """Variables naming the official reference (`*_OFFICIAL_*`) and the folder names their
    defaults give (`REPO_ROOT / "DiffusersMiniMaxH3"`)."""
    names, folders = [], []
    for name, call in _env_lookups(tree):
        if "OFFICIAL" in name and not name.endswith(("WEIGHTS", "CKPT", "CHECKPOINT")):
            names.append(name)
            for default in call.args[1:2]:
                folders += [n.value for n in ast.walk(default) if isinstance(n, ast.Constant)
                            and isinstance(n.value, str) and n.value and "/" not in n.value and "." not in n.value]
    return sorted(set(names)), folders


def _names(tree: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _defined_names(folder: OfficialFolder | None, module: str) -> set[str] | None:
    """Top-level functions and classes of an official module (None when it is not a file there)."""
    if folder is None:
        return None
    for root in (folder.path, folder.path / "src"):
        path = root / (module.replace(".", "/") + ".py")
        if path.is_file():
            tree = _parse(path.read_text(errors="replace"))
            return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))} if tree else set()
    return None


def _weights(tree: ast.AST, strings: set[str]) -> list[str]:
    calls = {_call_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    found = []
    if calls & WEIGHT_CALLS or any(s in WEIGHT_FOLDERS for s in strings):
        found += sorted(s for s in strings if HF_REPO.match(s) and not s.endswith((".py", ".json", ".yaml")))
        found += [f"{s}/" for s in WEIGHT_FOLDERS if s in strings]
        for name, _ in _env_lookups(tree):
            if name.endswith(("MODEL_ROOT", "_WEIGHTS", "_CKPT", "_CHECKPOINT", "_MODEL_PATH", "_VAE_PATH")):
                found.append(f"${name}")
        if not found:
            found.append("weights the test downloads or loads (" + ", ".join(sorted(calls & WEIGHT_CALLS)) + ")")
    return sorted(set(found))


def read_test(path: str, source: str, tree: ast.Module, index: "ModuleIndex",
              officials: list[OfficialFolder]) -> TestInfo:
    info = TestInfo(path=path, source=source)
    strings = _strings(tree)
    imported_tops = set()
    for module, names in imports_in(tree, path):
        imported_tops.add(module.split(".")[0])
        info.strong |= index.modules_of_import(module, names)
        info.weak |= index.modules_of_config_import(module, names)
    for s in strings:
        if s in index.registry:
            info.strong.add(index.registry[s][0])
        if s in index.unique_classes:
            info.strong.add(index.unique_classes[s])
    stem = PurePosixPath(path).stem
    info.weak |= {m for m in index.modules if re.search(rf"(^|_){re.escape(PurePosixPath(m).stem)}(_|$)", stem)}
    info.weak -= info.strong

    env_names, folders = _official_location(tree)
    named = imported_tops | {s.split(".")[0] for s in strings}  # importlib.import_module("pkg.mod") too
    for folder in officials:
        if folder.name in strings or folder.name in folders or set(folder.packages) & named:
            info.official = folder
            break
    info.official_env = env_names
    official_packages = set(info.official.packages) if info.official else set()
    deps = sorted(t for t in imported_tops if t and t not in NOT_IMPORTS and t not in sys.stdlib_module_names
                  and t not in index.local_tops and t not in official_packages)
    for module, names in imports_in(tree, path):
        if module.split(".")[0] in official_packages:
            info.official_symbols.setdefault(module, []).extend(names)
    # `importlib.import_module("pkg.factory")` with the factory's name in another string
    for module in sorted(s for s in strings if s.split(".")[0] in official_packages and "." in s):
        defined = _defined_names(info.official, module)
        if defined is not None:
            info.official_symbols.setdefault(module, []).extend(sorted(defined & (strings | _names(tree))))
    weights = _weights(tree, strings)
    info.needs = Needs(
        cuda=bool(cuda_uses(source)),
        official=info.official.name if info.official else (folders[0] if folders else None),
        deps=deps + [p for p in sorted(imported_tops & official_packages) if not info.official],
        weights=weights, synthetic_weights=not weights, env=_gates(tree),
    )
    return info


# ----- the whole checkout ------------------------------------------------------------------------


class ModuleIndex:
    """What names point at a component module: import paths, classes, registry architectures,
    configs."""

    def __init__(self, files: CommitFiles) -> None:
        self.modules = model_modules(files)
        self.registry = {arch: spec for arch, spec in registry_entries(files).items() if spec[0] in self.modules}
        owners: dict[str, set[str]] = {}
        for module, classes in self.modules.items():
            for cls in classes:
                owners.setdefault(cls, set()).add(module)
        self.unique_classes = {cls: next(iter(m)) for cls, m in owners.items() if len(m) == 1}
        self.by_import = {_module_name(m): m for m in self.modules}
        self.configs = {m: c for m in self.modules
                        if (c := f"{CONFIG_ROOT}/{PurePosixPath(m).parent.name}/{PurePosixPath(m).name}") in files.entries}
        self.config_owner = {_module_name(c): m for m, c in self.configs.items()}
        self.config_exports = self._config_exports(files)
        self.local_tops = {PurePosixPath(p).parts[0].removesuffix(".py") for p in files.paths}

    def _config_exports(self, files: CommitFiles) -> dict[str, str]:
        """Config class name -> component module, through the bucket packages' `__init__`."""
        out = {}
        for bucket in BUCKETS:
            init = f"{CONFIG_ROOT}/{bucket}/__init__.py"
            tree = _parse(files.read(init))
            for module, names in imports_in(tree, init) if tree else []:
                owner = self.config_owner.get(module)
                if owner:
                    out.update({name: owner for name in names})
        return out

    def modules_of_import(self, module: str, names: list[str]) -> set[str]:
        found = set()
        if module in self.by_import:
            found.add(self.by_import[module])
        for name in names:
            if f"{module}.{name}" in self.by_import:
                found.add(self.by_import[f"{module}.{name}"])
            if module.startswith(f"{MODEL_ROOT.replace('/', '.')}.") and name in self.unique_classes:
                found.add(self.unique_classes[name])
        return found

    def modules_of_config_import(self, module: str, names: list[str]) -> set[str]:
        found = {self.config_owner[module]} if module in self.config_owner else set()
        for name in names:
            if f"{module}.{name}" in self.config_owner:
                found.add(self.config_owner[f"{module}.{name}"])
            if name in self.config_exports:
                found.add(self.config_exports[name])
        return found


def is_parity_test(path: str, tree: ast.Module | None, source: str) -> bool:
    name = PurePosixPath(path).name
    if not (path.startswith(TESTS_ROOT) and name.startswith("test_") and name.endswith(".py")) or tree is None:
        return False
    return not NOT_PARITY.search(PurePosixPath(path).stem) and bool(comparison_calls(source))


def find_components(checkout: Path, commit: str, official_dirs: list[Path] | None = None) -> tuple[list[Component], CommitFiles]:
    """Every component module with at least one parity test, its tests and its history."""
    files = CommitFiles(checkout, commit)
    index = ModuleIndex(files)
    officials = official_folders(Path(checkout), list(official_dirs or []))
    tests = [p for p in files.paths if p.startswith(TESTS_ROOT) and PurePosixPath(p).name.startswith("test_")
             and p.endswith(".py")]
    files.read_many(tests + list(index.modules))
    strong: dict[str, list[TestInfo]] = {}
    weak: dict[str, list[TestInfo]] = {}
    for path in tests:
        source = files.read(path) or ""
        tree = files.tree(path)
        if not is_parity_test(path, tree, source):
            continue
        info = read_test(path, source, tree, index, officials)
        for module in info.strong:
            strong.setdefault(module, []).append(info)
        for module in info.weak:
            weak.setdefault(module, []).append(info)
    # A module's tests are those that import or name it; a test that only shares its config or
    # its name counts only for a module no test names.
    by_module = {m: strong.get(m) or weak[m] for m in {*strong, *weak}}
    history = History.read(Path(checkout), commit)
    components = []
    for module, tests_of in sorted(by_module.items()):
        sha, subject = history.added_by.get(module, (None, ""))
        component = Component(
            module=module, bucket=PurePosixPath(module).parent.name,
            files=_native_files(files, module, history.adds.get(sha, set())), config=index.configs.get(module),
            classes=index.modules[module], registry_archs=sorted(a for a, (m, _) in index.registry.items() if m == module),
            added_in=sha, added_subject=subject, tests=tests_of,
        )
        components.append(component)
    return components, files


def importers(files: CommitFiles, module: str) -> dict[str, bool]:
    """Files of the commit that import `module` -> whether at import time (a module-level
    import, which breaks when the module is gone) rather than inside a function."""
    name, stem = _module_name(module), PurePosixPath(module).stem
    python = [p for p in files.paths if p.endswith(".py") and p != module]
    files.read_many(python)
    out = {}
    for path in python:
        if stem not in (files.read(path) or ""):
            continue
        tree = files.tree(path)
        if tree is None:
            continue
        top_level = {id(n) for n in _module_level(tree)}
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found = [m for m, names in imports_in(node, path) if m == name or any(f"{m}.{n}" == name for n in names)]
                if found:
                    out[path] = out.get(path, False) or id(node) in top_level
    return out


def _module_file(files: CommitFiles, name: str) -> str | None:
    base = name.replace(".", "/")
    for path in (f"{base}.py", f"{base}/__init__.py"):
        if path in files.entries:
            return path
    return None


def import_closure(files: CommitFiles, roots: list[str]) -> set[str]:
    """The repository's files that run when `roots` are imported: their module-level imports of
    the repository's own modules (with the packages above them), followed to the end."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        path = todo.pop()
        if path in seen or path not in files.entries:
            continue
        seen.add(path)
        tree = files.tree(path)
        if tree is None:
            continue
        statements = [n for n in _module_level(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        for module, names in (pair for node in statements for pair in imports_in(node, path)):
            parts = module.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a and a.b first
                if (found := _module_file(files, ".".join(parts[:i]))) is not None:
                    todo.append(found)
            todo += [f for n in names if (f := _module_file(files, f"{module}.{n}")) is not None]
    return seen


def _module_level(tree: ast.Module) -> list[ast.AST]:
    """Statements that run when the module is imported (not inside a function body)."""
    out, todo = [], list(tree.body)
    while todo:
        node = todo.pop()
        out.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo += [c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt)]
    return out


def _native_files(files: CommitFiles, module: str, same_commit: set[str]) -> list[str]:
    """The module, and its private blocks: siblings it imports that its own commit added and
    nothing else imports."""
    out = [module]
    tree = files.tree(module)
    if tree is None:
        return out
    for imported, names in imports_in(tree, module):
        for candidate in [imported, *(f"{imported}.{n}" for n in names)]:
            path = candidate.replace(".", "/") + ".py"
            if (path != module and path in files.entries and path in same_commit and path not in out
                    and PurePosixPath(path).parent == PurePosixPath(module).parent
                    and set(importers(files, path)) <= {module}):
                out.append(path)
    return out


def family_of(test_path: str, known: set[str]) -> str:
    """The model family a test belongs to: its folder, or for tests in bucket folders the
    longest known family its name starts with."""
    parts = PurePosixPath(test_path).relative_to(TESTS_ROOT.rstrip("/")).parts
    if len(parts) > 1 and parts[0] not in GENERIC_TEST_DIRS:
        return parts[0]
    stem = PurePosixPath(test_path).stem.removeprefix("test_")
    matches = [f for f in known if stem == f or stem.startswith(f + "_")]
    return max(matches, key=len) if matches else stem.split("_")[0]


def known_families(files: CommitFiles) -> set[str]:
    return {PurePosixPath(p).relative_to(TESTS_ROOT.rstrip("/")).parts[0] for p in files.paths
            if p.startswith(TESTS_ROOT) and len(PurePosixPath(p).relative_to(TESTS_ROOT.rstrip("/")).parts) > 1} - GENERIC_TEST_DIRS
