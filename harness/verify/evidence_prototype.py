"""Prototype evidence checked by the harness itself: imports, instantiation, key dumps.

The imports and instantiation run inside the sandbox (`executor.run`), so the check sees
the same interpreter and packages as the parity test. The key dumps are read from the
worktree: each must be a non-empty JSON object of state-dict key -> shape.
"""

from __future__ import annotations

import json
import shlex
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
out = {"imports": {}, "instantiated": None, "attempts": []}
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
                break
            except BaseException as exc:
                out["attempts"].append(f"{cls.__name__}({label}): {type(exc).__name__}: {exc}"[:300])
        if out["instantiated"]:
            break
    if out["instantiated"]:
        break
print("HARNESS_PROTOTYPE_RESULT=" + json.dumps(out))
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


def _dump_check(workspace: Any, rel: str | None, side: str, details: list[str]) -> bool:
    if not rel or rel in ("planned", "unknown", "none"):
        details.append(f"dump {side}: the packet gives no path ({rel or 'none'})")
        return False
    problem = check_key_dump(workspace.path / rel)
    details.append(f"dump {side}: {rel} " + ("ok" if problem is None else problem))
    return problem is None


def prototype_evidence(workspace: Any, packet: Any, executor: Any, timeout_s: float = 300) -> PrototypeEvidence:
    targets = list(packet.fastvideo_target_files)
    models = [m for t in targets if "/configs/" not in t and (m := _module_of(t))]
    configs = [m for t in targets if "/configs/" in t and (m := _module_of(t))]
    details: list[str] = []
    command = f"python -c {shlex.quote(_PROBE)} {shlex.quote(json.dumps(models))} {shlex.quote(json.dumps(configs))}"
    result = executor.run(command, timeout_s=timeout_s)
    line = next((ln for ln in reversed(result.stdout.splitlines()) if ln.startswith(_RESULT_MARK)), None)
    if line is None:
        tail = (result.stderr or result.stdout)[-400:].strip()
        details.append(f"import probe did not finish (exit {result.exit_code}, timed_out={result.timed_out}): {tail}")
        probe: dict[str, Any] = {"imports": {}, "instantiated": None, "attempts": []}
    else:
        probe = json.loads(line[len(_RESULT_MARK):])
    imports = probe["imports"]
    imports_ok = bool(models) and all(imports.get(m) == "ok" for m in models + configs)
    for name, status in imports.items():
        if status != "ok":
            details.append(f"import {name}: {status}")
    if probe["instantiated"]:
        details.append(f"instantiated {probe['instantiated']}")
    else:
        details.append("instantiate failed: " + ("; ".join(probe["attempts"][-3:]) or "no EntryClass found"))
    dumps = getattr(packet, "prototype_key_dumps", None)
    official = _dump_check(workspace, getattr(dumps, "official", None), "official", details)
    fastvideo = _dump_check(workspace, getattr(dumps, "fastvideo", None), "fastvideo", details)
    return PrototypeEvidence(imports_ok, bool(probe["instantiated"]), official, fastvideo, details)
