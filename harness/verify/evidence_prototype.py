"""Prototype evidence checked by the harness itself: imports, instantiation, key dumps.

The imports and instantiation run inside the sandbox (`executor.run`), so the check sees
the same interpreter and packages as the parity test. The key dumps are read from the
worktree: each must be a non-empty JSON object of state-dict key -> shape, and must be what
the models really hold: the FastVideo dump is compared with the `state_dict()` of the native
model the probe instantiated, and the official dump with the official model built by the
packet's instantiation factory. A dump left unchanged from the base commit that cannot be
compared (or does not match) is stale evidence, never a prototype success.
"""

from __future__ import annotations

import json
import shlex
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_RESULT_MARK = "HARNESS_PROTOTYPE_RESULT="

# Runs in the sandbox. It imports every target module, then tries to build the model file's
# EntryClass from a config class defined in the config module (best effort: FastVideo
# models take the full config, some take the arch config, stateless ones take nothing).
_PROBE = r'''
import importlib, inspect, json, sys, traceback
sys.path.insert(0, ".")
models, configs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
officials, result_path = json.loads(sys.argv[3]), sys.argv[4]
out = {"imports": {}, "instantiated": None, "attempts": [], "state_dict": None,
       "official": None, "official_state_dict": None, "official_attempts": []}
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
# The official model, built the way the packet's instantiation files say (a factory that needs
# no arguments, such as build_vae()), with the official reference dir importable.
import os
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
            found = shapes(built)
            if found is not None:
                out["official"], out["official_state_dict"] = f"{path}.{name}()", found
                break
        except BaseException as exc:
            out["official_attempts"].append(f"{path}.{name}(): {type(exc).__name__}: {exc}"[:300])
    if out["official"]:
        break
with open(result_path, "w") as fh:
    json.dump(out, fh)
print("HARNESS_PROTOTYPE_RESULT=" + result_path)
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


def prototype_evidence(workspace: Any, packet: Any, executor: Any, timeout_s: float = 300) -> PrototypeEvidence:
    targets = list(packet.fastvideo_target_files)
    models = [m for t in targets if "/configs/" not in t and (m := _module_of(t))]
    configs = [m for t in targets if "/configs/" in t and (m := _module_of(t))]
    details: list[str] = []
    # The probe writes its result (state dicts can be large) to a file only this probe names.
    result_rel = f".harness-scratch/prototype-probe-{uuid.uuid4().hex}.json"
    (workspace.path / ".harness-scratch").mkdir(exist_ok=True)
    workdir = str(getattr(executor, "workdir", "") or ".").rstrip("/")
    command = (f"python -c {shlex.quote(_PROBE)} {shlex.quote(json.dumps(models))} {shlex.quote(json.dumps(configs))} "
               f"{shlex.quote(json.dumps(_official_factories(packet)))} {shlex.quote(workdir + '/' + result_rel)}")
    result = executor.run(command, timeout_s=timeout_s)
    result_file = workspace.path / result_rel
    probe: dict[str, Any] = {"imports": {}, "instantiated": None, "attempts": []}
    if result_file.is_file() and any(ln.startswith(_RESULT_MARK) for ln in result.stdout.splitlines()):
        probe = json.loads(result_file.read_text())
    else:
        tail = (result.stderr or result.stdout)[-400:].strip()
        details.append(f"import probe did not finish (exit {result.exit_code}, timed_out={result.timed_out}): {tail}")
    result_file.unlink(missing_ok=True)
    imports = probe["imports"]
    imports_ok = bool(models) and all(imports.get(m) == "ok" for m in models + configs)
    for name, status in imports.items():
        if status != "ok":
            details.append(f"import {name}: {status}")
    if probe["instantiated"]:
        details.append(f"instantiated {probe['instantiated']}")
    else:
        details.append("instantiate failed: " + ("; ".join(probe["attempts"][-3:]) or "no EntryClass found"))
    if probe.get("official"):
        details.append(f"official model built by {probe['official']}")
    dumps = getattr(packet, "prototype_key_dumps", None)
    official = _dump_check(workspace, getattr(dumps, "official", None), "official", probe.get("official_state_dict"),
                           "; ".join(probe.get("official_attempts") or []) or "no official factory could build it",
                           details)
    fastvideo = _dump_check(workspace, getattr(dumps, "fastvideo", None), "fastvideo", probe.get("state_dict"),
                            "the native model did not instantiate", details)
    return PrototypeEvidence(imports_ok, bool(probe["instantiated"]), official, fastvideo, details)
