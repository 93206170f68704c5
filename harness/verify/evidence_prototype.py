"""Prototype evidence checked by the harness itself: imports, instantiation, key dumps.

The harness recomputes both key/shape dumps as the verdict runs the test, each on its side:
the port's imports, its EntryClass built from its config and that model's `state_dict()` in a
sandbox on the port's tree (the base commit plus the agent's allowed changes, no official
reference), and the official model, built by the packet's instantiation factory, in a sandbox
on the base commit with the official reference (no code of the agent's). The dumps the agent
wrote are read from the worktree: each must be a non-empty JSON object of state-dict key ->
shape and must be what the models really hold. A dump left unchanged from the base commit
that cannot be compared (or does not match) is stale evidence, never a prototype success.
"""

from __future__ import annotations

import json
import shlex
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

# Runs in the port's sandbox. It imports every target module, then tries to build the model
# file's EntryClass from a config class defined in the config module (best effort: FastVideo
# models take the full config, some take the arch config, stateless ones take nothing).
_PORT_PROBE = r'''
import importlib, inspect, json, sys
models, configs, mark = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
out = {"imports": {}, "instantiated": None, "attempts": [], "state_dict": None}
def shapes(obj):
    sd = obj.state_dict() if hasattr(obj, "state_dict") else None
    return {k: list(v.shape) for k, v in sd.items()} if sd is not None else None
mods = {}
for name in models + configs:
    try:
        mods[name] = importlib.import_module(name)
        out["imports"][name] = "ok"
    except BaseException as exc:
        out["imports"][name] = f"{type(exc).__name__}: {exc}"[:400]
cfg_classes = []
for name in configs:
    mod = mods.get(name)
    if mod is None:
        continue
    for attr, obj in vars(mod).items():
        if inspect.isclass(obj) and obj.__module__ == mod.__name__ and attr.endswith("Config"):
            cfg_classes.append(obj)
cfg_classes.sort(key=lambda c: c.__name__.endswith("ArchConfig"))  # full configs first
for name in models:
    mod = mods.get(name)
    entry = getattr(mod, "EntryClass", None) if mod else None
    if entry is None:
        if mod is not None:
            out["attempts"].append(f"{name}: no EntryClass")
        continue
    for cls in (entry if isinstance(entry, (list, tuple)) else [entry]):
        tries = [(f"{c.__name__}()", c) for c in cfg_classes] + [("no args", None)]
        for label, cfg_cls in tries:
            try:
                obj = cls(cfg_cls()) if cfg_cls is not None else cls()
                n = sum(p.numel() for p in obj.parameters()) if hasattr(obj, "parameters") else 0
                out["instantiated"] = f"{cls.__name__}({label}) with {n} parameters"
                out["state_dict"] = shapes(obj)
                break
            except BaseException as exc:
                out["attempts"].append(f"{cls.__name__}({label}): {type(exc).__name__}: {exc}"[:300])
        if out["instantiated"]:
            break
    if out["instantiated"]:
        break
print(mark + json.dumps(out))
'''

# Runs in the trusted sandbox: the official model, built the way the packet's instantiation
# files say (a factory that needs no arguments, such as build_vae()).
_OFFICIAL_PROBE = r'''
import importlib, json, os, sys
officials, mark = json.loads(sys.argv[1]), sys.argv[2]
out = {"official": None, "official_state_dict": None, "official_attempts": []}
if os.environ.get("OFFICIAL_REF_DIR"):
    sys.path.insert(1, os.environ["OFFICIAL_REF_DIR"])
for path, symbols in officials:
    try:
        mod = importlib.import_module(path)
    except BaseException as exc:
        out["official_attempts"].append(f"import {path}: {type(exc).__name__}: {exc}"[:300])
        continue
    for name in symbols:
        fn = getattr(mod, name, None)
        if not callable(fn):
            continue
        try:
            built = fn()
            sd = built.state_dict() if hasattr(built, "state_dict") else None
            if sd is not None:
                out["official"] = f"{path}.{name}()"
                out["official_state_dict"] = {k: list(v.shape) for k, v in sd.items()}
                break
        except BaseException as exc:
            out["official_attempts"].append(f"{path}.{name}(): {type(exc).__name__}: {exc}"[:300])
    if out["official"]:
        break
print(mark + json.dumps(out))
'''


@dataclass
class PrototypeEvidence:
    imports_ok: bool
    instantiates_ok: bool
    official_dump: bool
    fastvideo_dump: bool
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.imports_ok and self.instantiates_ok and self.official_dump and self.fastvideo_dump

    def failure(self) -> str:
        """The first thing missing, with its detail line, for a precise blocker."""
        checks = ((self.imports_ok, "target modules do not import", "import"),
                  (self.instantiates_ok, "EntryClass does not instantiate from its config", "instantiate failed"),
                  (self.official_dump, "official key/shape dump missing or invalid", "dump official"),
                  (self.fastvideo_dump, "FastVideo key/shape dump missing or invalid", "dump fastvideo"))
        for flag, what, prefix in checks:
            if not flag:
                extra = next((d for d in self.details if d.startswith(prefix)), "")
                return f"prototype: {what}" + (f" ({extra})" if extra else "")
        return "none"


def _module_of(target: str) -> str | None:
    path = target.split("::", 1)[0]
    if not path.endswith(".py"):
        return None
    parts = Path(path).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def check_key_dump(path: Path) -> str | None:
    """None when `path` holds a non-empty JSON object of key -> shape; else the problem."""
    if not path.is_file():
        return "missing"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return f"not JSON ({exc})"
    if not isinstance(data, dict) or not data:
        return "not a non-empty JSON object of key -> shape"
    for key, shape in data.items():
        if isinstance(shape, dict):
            shape = shape.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            return f"entry {key!r} is not a shape (a list of non-negative ints)"
    return None


def _load_dump(path: Path) -> dict[str, list[int]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: list(v.get("shape") if isinstance(v, dict) else v) for k, v in data.items()}


def compare_dump(dump: dict[str, list[int]], model: dict[str, list[int]]) -> str | None:
    """None when the dump holds exactly the model's keys and shapes; else what differs."""
    missing = sorted(set(model) - set(dump))
    extra = sorted(set(dump) - set(model))
    shapes = sorted(k for k in set(dump) & set(model) if list(dump[k]) != list(model[k]))
    if not (missing or extra or shapes):
        return None
    parts = []
    if missing:
        parts.append(f"{len(missing)} model key(s) missing from the dump ({', '.join(missing[:3])})")
    if extra:
        parts.append(f"{len(extra)} dump key(s) the model does not have ({', '.join(extra[:3])})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} shape(s) differ ({k}: dump {dump[k]} vs model {model[k]})")
    return "; ".join(parts)


def _dump_check(workspace: Any, rel: str | None, side: str, model: dict[str, list[int]] | None,
                why_no_model: str, details: list[str]) -> bool:
    """The dump is valid, and matches the model as instantiated; a dump unchanged since the
    base commit counts only when it matches (it was not written in this run)."""
    if not rel or rel in ("planned", "unknown", "none"):
        details.append(f"dump {side}: the packet gives no path ({rel or 'none'})")
        return False
    path = workspace.path / rel
    problem = check_key_dump(path)
    if problem is not None:
        details.append(f"dump {side}: {rel} {problem}")
        return False
    base = workspace.file_at_base(rel) if hasattr(workspace, "file_at_base") else None
    stale = base is not None and base == path.read_text(encoding="utf-8")
    if model is None:
        if stale:
            details.append(f"dump {side}: {rel} is unchanged since the base commit (not written in this run) and "
                           f"cannot be checked against the model ({why_no_model})")
            return False
        details.append(f"dump {side}: {rel} ok (not compared with the model: {why_no_model})")
        return True
    mismatch = compare_dump(_load_dump(path), model)
    if mismatch is not None:
        where = " (unchanged since the base commit: not written in this run)" if stale else ""
        details.append(f"dump {side}: {rel} does not match the {side} model's state_dict{where}: {mismatch}")
        return False
    details.append(f"dump {side}: {rel} ok, matches the {side} model's state_dict ({len(model)} keys)"
                   + (" (unchanged since the base commit)" if stale else ""))
    return True


def _official_factories(packet: Any) -> list[tuple[str, list[str]]]:
    out = []
    for f in getattr(packet, "official_instantiation_files", []) or []:
        module = _module_of(f.path)
        symbols = [s.strip() for s in str(f.symbols).replace(";", ",").split(",") if s.strip()]
        if module and symbols:
            out.append((module, symbols))
    return out


def _probe(executor: Any, script: str, args: list[str], env: dict[str, str], timeout_s: float,
           details: list[str], what: str) -> dict[str, Any]:
    mark = f"HARNESS_PROBE_{uuid.uuid4().hex}="
    command = " ".join(["python", "-P", "-c", shlex.quote(script), *(shlex.quote(a) for a in args), shlex.quote(mark)])
    try:
        executor.start()
        result = executor.run(command, timeout_s=timeout_s, env=env)
    except Exception as exc:  # the sandbox itself: reported as the probe's failure
        details.append(f"{what} probe did not run: {exc}")
        return {}
    lines = [ln[len(mark):] for ln in result.stdout.splitlines() if ln.startswith(mark)]
    try:
        found = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        found = None
    if not isinstance(found, dict):
        tail = (result.stderr or result.stdout)[-400:].strip()
        details.append(f"{what} probe did not finish (exit {result.exit_code}, timed_out={result.timed_out}): {tail}")
        return {}
    return found


def prototype_evidence(workspace: Any, packet: Any, new_executor: Callable[[Any], Any],
                       timeout_s: float = 300) -> PrototypeEvidence:
    """Check the prototype; `new_executor(tree)` makes a sandbox (not started) for a tree, as
    for the verdict."""
    from harness.verify.verdict import CleanTree, TreeProblem, build_trees

    targets = list(packet.fastvideo_target_files)
    models = [m for t in targets if "/configs/" not in t and (m := _module_of(t))]
    configs = [m for t in targets if "/configs/" in t and (m := _module_of(t))]
    details: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="fastvideo-harness-prototype-"))
    (tmp / "trusted").mkdir()
    executors: list[Any] = []
    port_probe: dict[str, Any] = {}
    official_probe: dict[str, Any] = {}
    try:
        try:
            build_trees(workspace, packet, tmp / "trusted", tmp / "port")
        except (TreeProblem, OSError) as exc:
            details.append(f"import probe did not run: the trees could not be built: {exc}")
        else:
            official = getattr(workspace, "official_ref_dir", None)
            assets = list(workspace.local_assets()) if hasattr(workspace, "local_assets") else []
            official_path = Path(official).resolve() if official else None
            port_assets = [(n, p) for n, p in assets if official_path is None or Path(p).resolve() != official_path]
            for tree, items in ((tmp / "trusted", assets), (tmp / "port", port_assets)):
                for name, _ in items:
                    (tree / name).mkdir(parents=True, exist_ok=True)
            run_id = f"{getattr(workspace, 'run_id', 'probe')}-probe-{uuid.uuid4().hex[:6]}"
            repo = Path(getattr(workspace, "repo", tmp))
            trusted = new_executor(CleanTree(tmp / "trusted", official, repo, run_id, assets))
            port = new_executor(CleanTree(tmp / "port", None, repo, f"{run_id}-port", port_assets))
            executors += [trusted, port]

            def run_port() -> None:
                port_probe.update(_probe(port, _PORT_PROBE, [json.dumps(models), json.dumps(configs)],
                                         {"PYTHONPATH": port.workdir}, timeout_s, details, "import"))

            thread = threading.Thread(target=run_port, daemon=True)
            thread.start()
            if _official_factories(packet):
                official_probe.update(_probe(trusted, _OFFICIAL_PROBE, [json.dumps(_official_factories(packet))],
                                             {"PYTHONPATH": trusted.workdir}, timeout_s, details, "official"))
            thread.join()
    finally:
        for ex in executors:
            try:
                ex.close()
            except Exception:  # already gone
                pass
        shutil.rmtree(tmp, ignore_errors=True)
    imports = port_probe.get("imports") or {}
    imports_ok = bool(models) and all(imports.get(m) == "ok" for m in models + configs)
    for name, status in imports.items():
        if status != "ok":
            details.append(f"import {name}: {status}")
    if port_probe.get("instantiated"):
        details.append(f"instantiated {port_probe['instantiated']}")
    else:
        details.append("instantiate failed: " + ("; ".join((port_probe.get("attempts") or [])[-3:])
                                                 or "no EntryClass found"))
    if official_probe.get("official"):
        details.append(f"official model built by {official_probe['official']}")
    dumps = getattr(packet, "prototype_key_dumps", None)
    official = _dump_check(workspace, getattr(dumps, "official", None), "official",
                           official_probe.get("official_state_dict"),
                           "; ".join(official_probe.get("official_attempts") or [])
                           or "no official factory could build it", details)
    fastvideo = _dump_check(workspace, getattr(dumps, "fastvideo", None), "fastvideo", port_probe.get("state_dict"),
                            "the native model did not instantiate", details)
    return PrototypeEvidence(imports_ok, bool(port_probe.get("instantiated")), official, fastvideo, details)
