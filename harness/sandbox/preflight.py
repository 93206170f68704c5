"""Preflight: what the sandbox must offer before an agent spends a token.

The checks run inside the run's own sandbox, as its tests will: the interpreter starts;
pytest, torch (version shown) and the modules the packet needs import; `fastvideo` imports
from the worktree; CUDA is there when `--gpus` asks for it; the official reference and the
weights the packet names are readable; in parity-debug the parity test collects. `harness run`
stops blocked on any failure (every failure listed, each with its fix); `harness doctor` runs
the same checks alone and prints them as a table.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from harness.contracts.paths import PATH_WORDS, is_import_path
from harness.sandbox.preflight_cache import PreflightCache

_HF_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".json", ".yaml", ".yml", ".onnx",
                  ".msgpack", ".h5", ".npz", ".npy", ".txt", ".py", ".model")
_PROBE_MARK = "=====HARNESS-PREFLIGHT====="


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if not c.ok]


def blocker_text(checks: list[Check]) -> str:
    bad = failures(checks)
    return f"preflight: {len(bad)} check(s) failed: " + "; ".join(f"{c.name}: {c.detail}" for c in bad)


def run_preflight(executor: Any, packet: Any, *, gpus: str = "none", repo: Path | None = None,
                  cache: PreflightCache | None = None) -> list[Check]:
    """Every check, in order; stops after the interpreter when python cannot start at all.

    Two sandbox commands: the quick half (the interpreter, the modules the packet needs, the
    paths it names: nothing imports torch) while the host fingerprints the inputs, then the
    slow half (pytest, torch, fastvideo, the parity test's collection), which `cache` may have
    remembered from a passing run on the same inputs (see preflight_cache)."""
    who = _who(executor)
    chosen = getattr(getattr(executor, "python", None), "path", None)
    paths = _readable_paths(executor, packet, repo)
    modules = _needed_modules(executor, packet)
    collect = packet.parity_test if packet.mode == "parity-debug" and _test_exists(executor, packet) else None
    with ThreadPoolExecutor(max_workers=1) as host:
        host_key = host.submit(cache.host_key, executor, packet, gpus) if cache is not None else None
        quick = executor.run(_quick_command(chosen, modules, [p for _, p, _ in paths]), timeout_s=300)
        key = PreflightCache.key(host_key.result(), _quick_result(quick)[0].get("interpreter", {})) \
            if host_key is not None else None
    data, found = _quick_result(quick)
    if not data:
        return [Check("interpreter", False, _interpreter_failure(quick, who, chosen), _interpreter_fix(executor))]
    exe, version = data["interpreter"]["executable"], data["interpreter"]["version"]
    if chosen is not None and Path(found).parent != Path(chosen).parent:
        return [Check("interpreter", False, f"`python` on the sandbox's PATH is {found}, not {chosen}",
                      _interpreter_fix(executor))]
    checks = [Check("interpreter", True, f"{exe} (Python {version}, {who})")]

    workdir = executor.workdir
    remembered = cache.load(key) if cache is not None else None
    if remembered is not None:
        slow = _rebased(remembered["slow"], "<worktree>", workdir)
    else:
        # Collecting imports the parity test, which may read the --pass-env tokens as the run will.
        run = getattr(executor, "run_test", executor.run) if collect else executor.run
        probe = run(f"python - <<'{_PROBE_MARK}'\n{_probe_script(collect)}\n{_PROBE_MARK}\n", timeout_s=600)
        slow = _probe_result(probe)
        if slow is None:
            return checks + [Check("probe", False, f"the check script failed (exit {probe.exit_code}): "
                                   f"{_last_line(probe.stderr or probe.stdout)}", "run `harness doctor` and read the output")]
    slow_checks = [_version_check("pytest", slow.get("pytest"), "install pytest in the project's environment"),
                   _torch_check(slow.get("torch")),
                   _fastvideo_check(slow.get("fastvideo"), slow.get("cwd") or workdir)]
    if str(gpus or "none").lower() not in ("none", "0", ""):
        slow_checks.append(_cuda_check(slow.get("torch"), gpus, executor.kind))
    if packet.mode == "parity-debug":
        slow_checks.append(_collect_check(packet, slow.get("collect") if collect else None,
                                          _unwritten_targets(executor, packet)))
    if remembered is None and cache is not None and all(c.ok for c in slow_checks):
        cache.store(key, {"slow": _rebased(slow, workdir, "<worktree>")})
    if remembered is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(remembered["saved"]))
        slow_checks = [Check(c.name, c.ok, f"{c.detail} (remembered: passed on the same inputs, {when})", c.fix)
                       for c in slow_checks]
    by_name = {c.name: c for c in slow_checks}
    readable = data.get("paths") or {}
    checks += [by_name["pytest"], by_name["torch"]]
    checks += [_module_check(name, data["modules"].get(name)) for name in modules]
    checks.append(by_name["fastvideo"])
    checks += [by_name[name] for name in ("cuda",) if name in by_name]
    checks += [_path_check(label, path, readable.get(path), fix) for label, path, fix in paths]
    checks += [by_name[name] for name in ("parity test",) if name in by_name]
    return checks


def _unwritten_targets(executor: Any, packet: Any) -> set[str]:
    """The import names of target files the port has not written yet."""
    paths = {t.split("::")[0] for t in packet.fastvideo_target_files}
    return {p.removesuffix(".py").replace("/", ".") for p in paths
            if p.endswith(".py") and not (Path(executor.ws.path) / p).is_file()}


def _rebased(data: Any, old: str, new: str) -> Any:
    """`data` with the worktree's path `old` written as `new` (a remembered result names no path)."""
    if isinstance(data, dict):
        return {k: _rebased(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [_rebased(v, old, new) for v in data]
    if isinstance(data, str) and old:
        return data.replace(old, new)
    return data


def _test_exists(executor: Any, packet: Any) -> bool:
    return (Path(executor.ws.path) / packet.parity_test).is_file()


# ----- the interpreter ------------------------------------------------------------------------


def _who(executor: Any) -> str:
    if executor.kind == "docker":
        return f"image {executor.image}, user {executor.user}"
    uid = getattr(executor, "uid", None)
    import os

    return f"{executor.kind}, uid {uid if uid is not None else os.getuid()}"


def _interpreter_failure(result: Any, who: str, chosen: Path | None) -> str:
    err = _last_line(result.stderr or result.stdout)
    name = chosen or "python"
    if "Permission denied" in (result.stderr or "") or result.exit_code == 126:
        return f"{name} may not be run by the sandbox user ({who}): exit {result.exit_code}, Permission denied ({err})"
    if result.exit_code == 127:
        return f"{name} is not found in the sandbox ({who}): exit 127 ({err})"
    return f"{name} did not start ({who}): exit {result.exit_code} ({err})"


def _interpreter_fix(executor: Any) -> str:
    if executor.kind == "docker":
        return ("the image's python must run for the sandbox user: use --sandbox-user root (or the UID owning the "
                "image's python), or an image whose python is world-readable")
    python = getattr(getattr(executor, "python", None), "path", "python")
    return f"pass --python PATH naming the project's interpreter (now {python}); its folders must be readable"


# ----- what the packet needs ------------------------------------------------------------------


def _needed_modules(executor: Any, packet: Any) -> list[str]:
    """The official reference when it is an import path, and the third-party modules the parity
    test imports at module level (fastvideo's own and the checkout's packages are the port's)."""
    names: list[str] = []
    ref = packet.official_ref_dir
    if ref not in ("unknown", "none") and is_import_path(ref) and not executor.official_dir:
        names.append(ref)
    test = Path(executor.ws.path) / packet.parity_test
    if test.is_file():
        try:
            tree = ast.parse(test.read_text(errors="replace"))
        except SyntaxError:
            tree = None
        for node in tree.body if tree else []:
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.append(node.module)
    local = {p.name.removesuffix(".py") for p in Path(executor.ws.path).iterdir()}
    keep = []
    for name in names:
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in local or top in ("fastvideo", "tests", "__future__", "pytest", "torch"):
            continue
        if top not in keep:
            keep.append(top)
    return keep


def _readable_paths(executor: Any, packet: Any, repo: Path | None) -> list[tuple[str, str, str]]:
    """(label, path inside the sandbox, fix) for the official reference and the local weights
    the packet names."""
    out: list[tuple[str, str, str]] = []
    if executor.official_dir:
        out.append(("official reference", executor.official_dir,
                    "make official_ref_dir readable (a clone at the checkout root is mounted read-only)"))
    for name, _source in executor.ws.local_assets():
        out.append((f"checkout folder {name}", f"{executor.workdir}/{name}",
                    "the git-ignored folder of the checkout must be readable"))
    repo = Path(repo) if repo else Path(executor.ws.repo)
    conversion_dir = packet.conversion.converted_component_dir
    if packet.mode == "parity-debug" and conversion_dir not in PATH_WORDS:
        out.append(("converted weights", f"{executor.workdir}/{conversion_dir}",
                    f"run the conversion first: {conversion_dir} must exist in the checkout (git-ignored folders "
                    "converted_weights/ and official_weights/ are mounted read-only)"))
    source = re.split(r"[\s,;]+", packet.official_weight_source.strip())[0]
    hf_cache = getattr(executor.access, "hf_cache", None)
    if "/" in source and (repo / source).exists():
        out.append(("official weights", f"{executor.workdir}/{PurePosixPath(source)}",
                    "keep the weights in a git-ignored folder of the checkout (official_weights/)"))
    elif (_HF_REPO.match(source) and hf_cache and not source.lower().endswith(_FILE_SUFFIXES)
          and not (repo / source).exists() and not _in_official(executor, source)):
        org, name = source.split("/", 1)
        folder = f"models--{org}--{name}"
        hub = "hub/" if (Path(hf_cache) / "hub" / folder).exists() else ("" if (Path(hf_cache) / folder).exists() else "hub/")
        out.append(("official weights", f"{executor.hf_cache_dir}/{hub}{folder}",
                    f"download {source} into the --hf-cache folder (huggingface-cli download {source}), "
                    "or allow downloads with --network and --pass-env HF_TOKEN"))
    return out


def _in_official(executor: Any, source: str) -> bool:
    official = getattr(executor.ws, "official_ref_dir", None)
    return bool(official) and (Path(official) / source).exists()


# ----- the probe run inside the sandbox -------------------------------------------------------

_QUICK = r'''
import importlib.util, json, os, sys
out = {"interpreter": {"executable": sys.executable, "version": sys.version.split()[0],
                       "sys_path": {p: os.stat(p).st_mtime_ns for p in sys.path if p and os.path.isdir(p)}},
       "modules": {}, "paths": {}}
for name in MODULES:
    try:
        out["modules"][name] = {"found": importlib.util.find_spec(name) is not None}
    except Exception as e:
        out["modules"][name] = {"found": False, "error": f"{type(e).__name__}: {e}"}
for path in PATHS:
    try:
        os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
        out["paths"][path] = {"ok": True}
    except Exception as e:
        out["paths"][path] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
print("MARK")
print(json.dumps(out))
'''

_PROBE = r'''
import json, os, sys
out = {"cwd": os.path.realpath(os.getcwd())}
try:
    import pytest
    out["pytest"] = {"version": pytest.__version__}
except Exception as e:
    out["pytest"] = {"error": f"{type(e).__name__}: {e}"}
try:
    import torch
    out["torch"] = {"version": torch.__version__, "cuda": bool(torch.cuda.is_available()),
                    "devices": int(torch.cuda.device_count()), "cuda_version": torch.version.cuda}
except Exception as e:
    out["torch"] = {"error": f"{type(e).__name__}: {e}"}
try:
    import fastvideo
    out["fastvideo"] = {"file": os.path.realpath(getattr(fastvideo, "__file__", None) or list(fastvideo.__path__)[0])}
except Exception as e:
    out["fastvideo"] = {"error": f"{type(e).__name__}: {e}"}
if COLLECT:  # in this process: the interpreter and torch start once for every check
    import contextlib, io
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            code = int(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", COLLECT]))
    except BaseException as e:
        code = -1
        buf.write(f"{type(e).__name__}: {e}")
    out["collect"] = {"code": code, "output": buf.getvalue()[-4000:]}
print("MARK")
print(json.dumps(out))
'''


def _quick_command(chosen: Path | None, modules: list[str], paths: list[str]) -> str:
    # The chosen interpreter by its path (PATH would quietly skip one that cannot run), then
    # `python` as the tests will find it: it must be the same one.
    python = shlex.quote(str(chosen)) if chosen else "python"
    script = (_QUICK.replace("MODULES", json.dumps(modules)).replace("PATHS", json.dumps(paths))
              .replace('"MARK"', json.dumps(_PROBE_MARK)))
    return f"{python} - <<'{_PROBE_MARK}' || exit $?\n{script}\n{_PROBE_MARK}\ncommand -v python"


def _quick_result(result: Any) -> tuple[dict[str, Any], str]:
    """(the quick probe's data, `python` as PATH finds it); ({}, "") when python did not run."""
    if result.exit_code != 0:
        return {}, ""
    data = _probe_result(result)
    if data is None or "interpreter" not in data:
        return {}, ""
    lines = result.stdout.strip().splitlines()
    return data, (lines[-1].strip() if len(lines) > 2 else "")


def _probe_script(collect: str | None) -> str:
    return _PROBE.replace("COLLECT", repr(collect)).replace('"MARK"', json.dumps(_PROBE_MARK))


def _probe_result(result: Any) -> dict[str, Any] | None:
    _, sep, tail = result.stdout.rpartition(_PROBE_MARK + "\n")
    if not sep:
        return None
    try:
        return json.loads(tail.strip().splitlines()[0])
    except (json.JSONDecodeError, IndexError):
        return None


# ----- reading the probe ----------------------------------------------------------------------


def _version_check(name: str, data: dict | None, fix: str) -> Check:
    data = data or {}
    if "version" in data:
        return Check(name, True, data["version"])
    return Check(name, False, f"does not import: {data.get('error', 'no result')}", fix)


def _torch_check(data: dict | None) -> Check:
    data = data or {}
    if "version" not in data:
        return Check("torch", False, f"does not import: {data.get('error', 'no result')}",
                     "install torch in the project's environment")
    cuda = f"CUDA {data.get('cuda_version')}, {data.get('devices', 0)} device(s) visible" if data.get("cuda") else "no CUDA device visible"
    return Check("torch", True, f"{data['version']} ({cuda})")


def _module_check(name: str, data: dict | None) -> Check:
    data = data or {}
    if data.get("found"):
        return Check(f"import {name}", True, "found")
    why = data.get("error") or "not installed"
    return Check(f"import {name}", False, f"not importable in the sandbox ({why})",
                 f"install {name} in the project's environment (or pass --python / --image naming one that has it)")


def _fastvideo_check(data: dict | None, workdir: str) -> Check:
    data = data or {}
    if "file" not in data:
        return Check("fastvideo", False, f"does not import from the worktree: {data.get('error', 'no result')}",
                     "install FastVideo's dependencies in the project's environment")
    where = data["file"]
    if not (where == workdir or where.startswith(workdir.rstrip("/") + "/")):
        return Check("fastvideo", False, f"imports from {where}, not from the worktree {workdir}",
                     "uninstall the non-editable fastvideo from the environment (the worktree must win)")
    return Check("fastvideo", True, f"imports from the worktree ({where})")


def _cuda_check(torch: dict | None, gpus: str, kind: str) -> Check:
    torch = torch or {}
    if torch.get("cuda") and torch.get("devices", 0) > 0:
        return Check("cuda", True, f"{torch['devices']} device(s) (--gpus {gpus})")
    from harness.sandbox.registry import get_sandbox, sandbox_names

    how = get_sandbox(kind).cuda_fix if kind in sandbox_names() else ""
    why = torch.get("error") or "torch sees no CUDA device"
    return Check("cuda", False, f"--gpus {gpus} asked for CUDA, but {why}", f"{how}; or run without --gpus")


def _path_check(label: str, path: str, data: dict | None, fix: str) -> Check:
    data = data or {}
    if data.get("ok"):
        return Check(label, True, f"{path} readable")
    return Check(label, False, f"{path} is not readable in the sandbox ({data.get('error', 'no result')})", fix)


def _collect_check(packet: Any, data: dict | None, unwritten: set[str] = frozenset()) -> Check:
    if data is None:
        return Check("parity test", False, f"{packet.parity_test} does not exist in the worktree",
                     "parity-debug needs the parity test: scaffold it first (add-model-02-parity)")
    code, output = int(data.get("code", -1)), str(data.get("output", ""))
    if code == 0:
        return Check("parity test", True, f"{packet.parity_test} collects ({_last_line(output)})")
    missing = set(re.findall(r"No module named '([\w.]+)'", output))
    if missing and missing <= unwritten:  # the test imports the port itself, which the run is to write
        return Check("parity test", True, f"{packet.parity_test} collects once the port exists (it imports "
                                          f"{', '.join(sorted(missing))}, a target file not written yet)")
    counted = re.search(r"(\d+) tests? collected|collected (\d+) items?", output)
    what = "collects no tests" if code == 5 and not counted else f"does not collect (pytest exit {code})"
    return Check("parity test", False, f"{packet.parity_test} {what}: {_first_error(output) or _last_line(output)}",
                 "fix the import or collection error the detail names (pytest --collect-only shows it)")


def _first_error(text: str) -> str:
    """pytest's own `E   ...` line (the exception), else the first line naming an error or a skip."""
    lines = text.splitlines()
    for pattern in (r"^E\s+\S", r"Error|error:|SKIPPED|skipped"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip().removeprefix("E").strip()[:300]
    return ""


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"
