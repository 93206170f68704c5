"""The harness's pytest plugin for the verdict run (copied into the sandbox read-only).

It depends on nothing but the standard library, pytest and (when present) torch and numpy,
because it runs inside the sandbox's interpreter, loaded with `-p` before collection.

What it does:
- streams one JSON record per event (session start, collection, each setup/call/teardown
  report, the exception each phase really raised, integrity violations, session finish)
  to a FIFO the harness reads while the test runs; records only add up, so a forged
  record conflicts with the real one instead of replacing it;
- snapshots the comparison machinery (torch.testing and its internals, torch's comparison
  functions and Tensor methods, numpy.testing, pytest's runner/reports/terminal and the
  plugin manager's hook implementations, atexit and os._exit, this module) and checks it
  after every test and at the end;
- checks the test module's imported names still are what its import statements bound;
- watches, with an audit hook (which cannot be removed) and a profile function, for code
  of the port ("native": files of the tree outside tests/) touching the official
  reference: importing or opening it, calling into it, running under it (a patched
  official class), patching classes it does not own, walking the heap or frames, spawning
  processes, using ctypes, or removing the profile function;
- ends the process with os._exit right after pytest's last hook, so no atexit handler or
  finalizer the tested code left can print or rewrite anything afterwards.

`python harness_verdict_plugin.py fingerprint <json>` is the cross-check the harness runs
in a fresh process: it imports the official modules the test loaded, without the tree,
and prints their fingerprint; `... native <json>` imports the port with the official
reference made unreachable.
"""

from __future__ import annotations

import builtins
import gc
import hashlib
import json
import os
import sys
import threading
import types

CONFIG_ENV = "HARNESS_VERDICT_CONFIG"
_MAX_TEXT = 600

_exit = os._exit  # kept before any tested code runs
_write = os.write
_audit_events = frozenset({
    "import", "open", "gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe",
    "sys._current_frames", "object.__setattr__", "object.__delattr__", "exec", "compile", "code.__new__",
    "sys.setprofile", "sys.settrace", "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn",
    "os.spawn", "os.fork", "os.forkpty", "ctypes.dlopen", "ctypes.dlsym", "ctypes.PyObj_FromPtr",
    "ctypes.call_function", "ctypes.addressof",
})
# Events that count only when the port's own code made the call (libraries use them honestly).
_DIRECT_ONLY = frozenset({"gc.get_objects", "gc.get_referrers", "gc.get_referents", "sys._getframe",
                          "sys._current_frames", "compile", "code.__new__", "ctypes.dlopen", "ctypes.dlsym",
                          "ctypes.PyObj_FromPtr", "ctypes.call_function", "ctypes.addressof"})
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                             "os.fork", "os.forkpty"})

_MODULES = (
    "torch", "torch.testing", "torch.testing._comparison", "torch.nn.functional", "torch.nn.modules.module",
    "numpy", "numpy.testing", "numpy.testing._private.utils", "numpy.core.numeric", "numpy._core.numeric",
    "builtins", "atexit", "os", "posix", "sys", "gc", "math", "operator",
    "pytest", "_pytest.runner", "_pytest.reports", "_pytest.python", "_pytest.main", "_pytest.terminal",
    "_pytest.junitxml", "_pytest.outcomes", "_pytest.nodes", "_pytest.fixtures", "_pytest.capture",
    "_pytest.config", "_pytest.skipping", "_pytest.unittest", "pluggy", "pluggy._hooks", "pluggy._manager",
    "pluggy._callers",
)
# Of these modules only the named functions are watched (the rest changes honestly: pytest
# swaps sys.unraisablehook and the std streams around each test).
_ONLY = {"sys": {"exit", "audit", "addaudithook", "setprofile", "settrace", "getprofile", "gettrace",
                 "_getframe", "modules"}}
_CLASSES = (
    ("torch", "Tensor"), ("torch.nn.modules.module", "Module"), ("_pytest.reports", "TestReport"),
    ("_pytest.reports", "BaseReport"), ("_pytest.reports", "CollectReport"), ("_pytest.runner", "CallInfo"),
    ("_pytest.python", "Function"), ("_pytest.terminal", "TerminalReporter"), ("_pytest.main", "Session"),
    ("pluggy._hooks", "HookCaller"), ("pluggy._hooks", "HookImpl"), ("pluggy._manager", "PluginManager"),
    ("_pytest.junitxml", "LogXML"), ("_pytest.outcomes", "OutcomeException"),
)


# ----- the record stream ---------------------------------------------------------------------

class _Stream:
    def __init__(self, path: str | None) -> None:
        self.fd = os.open(path, os.O_WRONLY) if path else None

    def send(self, kind: str, **data: object) -> None:
        data["k"] = kind
        line = json.dumps(data, default=str)
        if len(line) > 3800:  # one write of at most PIPE_BUF bytes is never interleaved
            line = json.dumps({"k": kind, "truncated": True, **{k: v for k, v in data.items()
                                                               if isinstance(v, (int, float, bool))}})
        if self.fd is not None:
            _write(self.fd, (line + "\n").encode())


def _short(text: object) -> str:
    text = str(text)
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


# ----- where code comes from -----------------------------------------------------------------

class _Origins:
    """Classifies code objects: "O" official, "N" native (the port), "T" trusted."""

    def __init__(self, tree: str, official: str | None, tests_dir: str, plugin_file: str) -> None:
        self.tree = tree.rstrip("/") + "/"
        self.official = official.rstrip("/") + "/" if official else None
        self.tests = tests_dir.rstrip("/") + "/"
        self.plugin_file = plugin_file
        # Keyed by id, holding the code object so that its id is never reused meanwhile.
        self.native_codes: dict[int, types.CodeType] = {}
        self.cache: dict[int, tuple[types.CodeType, str]] = {}

    def of_file(self, filename: str) -> str:
        if self.official and filename.startswith(self.official):
            return "O"
        if filename.startswith(self.tree) and not filename.startswith(self.tests) and filename != self.plugin_file:
            return "N"
        return "T"

    def of_code(self, code: types.CodeType) -> str:
        hit = self.cache.get(id(code))
        if hit is None:
            hit = self.cache[id(code)] = (code, "N" if id(code) in self.native_codes else self.of_file(code.co_filename))
        return hit[1]

    def mark_native(self, code: types.CodeType) -> None:
        self.native_codes[id(code)] = code
        self.cache.pop(id(code), None)
        for const in code.co_consts:
            if isinstance(const, types.CodeType):
                self.mark_native(const)

    def stack_has(self, frame: types.FrameType | None, kind: str) -> types.FrameType | None:
        while frame is not None:
            if self.of_code(frame.f_code) == kind:
                return frame
            frame = frame.f_back
        return None


def _where(frame: types.FrameType) -> str:
    return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"


# ----- snapshots of the machinery ------------------------------------------------------------

def _fn_state(value: object) -> tuple:
    """What can change inside a function object without rebinding it."""
    if isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    if isinstance(value, property):
        return (id(value.fget), id(value.fset))
    if isinstance(value, types.FunctionType):
        cells = tuple(id(c.cell_contents) if _cell_full(c) else None for c in (value.__closure__ or ()))
        return (id(value.__code__), id(value.__defaults__), _short(repr(value.__kwdefaults__)), cells)
    return ()


def _cell_full(cell: types.CellType) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


def _namespace(obj: object) -> dict:
    try:
        return dict(vars(obj))
    except TypeError:
        return {}


class _Snapshot:
    """Identity of every callable in the watched modules and classes."""

    def __init__(self, modules: dict[str, object], classes: list[type]) -> None:
        self.modules = modules
        self.module_items = {name: self._items(mod, _ONLY.get(name)) for name, mod in modules.items()}
        self.names = {id(obj): set(_namespace(obj)) for obj in [*modules.values(), *classes]}
        self.classes = classes
        self.class_items = {id(cls): self._items(cls) for cls in classes}
        self.builtin_names = set(dir(builtins))

    @staticmethod
    def _items(obj: object, only: set[str] | None = None) -> dict[str, tuple]:
        out = {}
        for name, value in _namespace(obj).items():
            if only is not None and name not in only:
                continue
            if callable(value) or isinstance(value, (classmethod, staticmethod, property, types.ModuleType)):
                out[name] = (value, _fn_state(value))
        return out

    def changes(self) -> list[str]:
        found = []
        for name, mod in self.modules.items():
            if sys.modules.get(name) is not mod:
                found.append(f"sys.modules[{name!r}] was replaced")
            found += self._diff(name, mod, self.module_items[name], module=True)
        for cls in self.classes:
            found += self._diff(f"{cls.__module__}.{cls.__qualname__}", cls, self.class_items[id(cls)], module=False)
        return found

    def _diff(self, label: str, obj: object, before: dict[str, tuple], module: bool) -> list[str]:
        found = []
        now = _namespace(obj)
        for name, (value, state) in before.items():
            if name not in now:
                found.append(f"{label}.{name} was deleted")
            elif now[name] is not value:
                found.append(f"{label}.{name} was replaced")
            elif _fn_state(value) != state:
                found.append(f"{label}.{name} was changed in place (code, defaults or closure)")
        for name in now.keys() - self.names[id(obj)]:
            value = now[name]
            if not module and callable(value):
                found.append(f"{label}.{name} was added (it overrides an inherited method)")
            elif module and name in self.builtin_names and label != "builtins":
                found.append(f"{label}.{name} was added (it shadows the builtin)")
        return found


def _watched() -> tuple[dict[str, object], list[type]]:
    import importlib

    for name in ("torch", "torch.testing", "torch.testing._comparison", "numpy", "numpy.testing"):
        try:
            importlib.import_module(name)
        except Exception:  # not installed: nothing of it to watch
            pass
    modules = {name: sys.modules[name] for name in _MODULES if name in sys.modules}
    classes = []
    for mod_name, cls_name in _CLASSES:
        cls = getattr(sys.modules.get(mod_name), cls_name, None)
        if isinstance(cls, type):
            classes.append(cls)
    comparison = sys.modules.get("torch.testing._comparison")
    if comparison is not None:
        classes += [v for v in vars(comparison).values() if isinstance(v, type) and v.__module__ == comparison.__name__]
    return modules, classes


# ----- the official reference's fingerprint --------------------------------------------------

def _code_digest(code: types.CodeType, h: "hashlib._Hash") -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(const, h)
        else:
            h.update(repr(const).encode())


def _value_digest(value: object) -> str:
    if isinstance(value, (classmethod, staticmethod)):
        value = value.__func__
    if isinstance(value, property):
        value = value.fget
    if isinstance(value, types.FunctionType):
        h = hashlib.sha256()
        _code_digest(value.__code__, h)
        h.update(repr(value.__defaults__).encode() + repr(value.__kwdefaults__).encode())
        return "fn:" + h.hexdigest()[:16]
    if isinstance(value, (int, float, str, bool, bytes, type(None))):
        return "v:" + repr(value)[:200]
    if isinstance(value, (tuple, frozenset)) and all(isinstance(v, (int, float, str, bool)) for v in value):
        return "v:" + repr(value)[:200]
    if isinstance(value, types.ModuleType):
        return "mod:" + value.__name__
    if isinstance(value, type):
        return f"type:{value.__module__}.{value.__qualname__}"
    return "obj:" + type(value).__qualname__


def fingerprint(module_names: list[str]) -> dict[str, dict[str, str]]:
    """Per official module: each top-level name and each attribute of the classes it
    defines, as a digest; changed at run time, the digest differs from a fresh import."""
    out = {}
    for name in sorted(module_names):
        mod = sys.modules.get(name)
        if mod is None:
            continue
        entries = {}
        for attr, value in sorted(_namespace(mod).items()):
            if attr.startswith("__") and attr.endswith("__"):
                continue
            entries[attr] = _value_digest(value)
            if isinstance(value, type) and value.__module__ == name:
                for cattr, cvalue in sorted(_namespace(value).items()):
                    if cattr in ("__dict__", "__weakref__", "__doc__", "__module__", "__annotations__"):
                        continue
                    entries[f"{attr}.{cattr}"] = _value_digest(cvalue)
        out[name] = entries
    return out


# ----- the plugin ----------------------------------------------------------------------------

class VerdictPlugin:
    def __init__(self, config: dict) -> None:
        self.cfg = config
        self.stream = _Stream(config.get("records"))
        self.origins = _Origins(config["tree"], config.get("official"), config["tree"].rstrip("/") + "/tests",
                                os.path.abspath(__file__))
        self.official_names = set(config.get("official_modules") or [])
        self.trusted_conftests = set(config.get("conftests") or [])
        self.violations: list[str] = []
        self.snapshot: _Snapshot | None = None
        self.plugins_at_start: set[int] = set()
        self.hookimpls: dict[tuple[int, str], int] = {}
        self.test_modules: dict[str, tuple[object, dict, dict]] = {}
        self.exitstatus: int | None = None
        self.installing = False
        self.atexit_count = 0
        self.local = threading.local()
        self.profiler = self.profile  # one bound method, so identity checks can find it again

    # -- violations --
    def violation(self, text: str) -> None:
        if text not in self.violations and len(self.violations) < 50:
            self.violations.append(text)
            self.stream.send("violation", what=_short(text))

    # -- audit hook and profile function --
    def audit(self, event: str, args: tuple) -> None:
        if event not in _audit_events or getattr(self.local, "busy", False):
            return
        self.local.busy = True
        try:
            self._audit(event, args)
        finally:
            self.local.busy = False

    def _audit(self, event: str, args: tuple) -> None:
        frame = sys._getframe(2)  # the frame that made the audited call
        origins = self.origins
        if event in ("sys.setprofile", "sys.settrace"):
            if not self.installing and not self._is_thread_start(frame):
                self.violation(f"{event} called at {_where(frame)}: it would remove the harness's watch")
            return
        if event == "exec":
            if frame is not None and origins.of_code(frame.f_code) == "N" and isinstance(args[0], types.CodeType):
                origins.mark_native(args[0])
            return
        if event in _DIRECT_ONLY:
            if frame is not None and origins.of_code(frame.f_code) == "N":
                self.violation(f"the port called {event} at {_where(frame)}")
            return
        native = origins.stack_has(frame, "N")
        if native is None:
            return
        if event == "import":
            module, filename = str(args[0]), str(args[1] or "")
            if module.split(".")[0] in self.official_names or (origins.official and filename.startswith(origins.official)):
                self.violation(f"the port imported the official module {module} at {_where(native)}")
        elif event == "open":
            path = os.fspath(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
            path = path.decode(errors="replace") if isinstance(path, bytes) else path
            if origins.official and os.path.abspath(path).startswith(origins.official):
                self.violation(f"the port opened {path} in the official reference at {_where(native)}")
            elif path.startswith("/proc/") and path.endswith("/environ"):
                self.violation(f"the port read {path} at {_where(native)}")
        elif event in ("object.__setattr__", "object.__delattr__"):
            target = args[0]
            if isinstance(target, type) and not self._native_class(target):
                self.violation(f"the port changed {target.__module__}.{target.__qualname__}.{args[1]} at {_where(native)}")
        elif event in _PROCESS_EVENTS:
            self.violation(f"the port started a process ({event}) at {_where(native)}")

    def _native_class(self, cls: type) -> bool:
        mod = sys.modules.get(cls.__module__)
        return self.origins.of_file(str(getattr(mod, "__file__", "") or "")) == "N"

    def _is_thread_start(self, frame: types.FrameType | None) -> bool:
        # threading starts each new thread with the profile function set by threading.setprofile.
        return (frame is not None and frame.f_code.co_filename == threading.__file__
                and getattr(threading, "_profile_hook", None) is self.profiler)

    def profile(self, frame: types.FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        kind = self.origins.of_code(frame.f_code)
        if kind == "O":
            native = self.origins.stack_has(frame.f_back, "N")
            if native is not None:
                self.violation(f"official code {frame.f_code.co_name} ran under the port's {_where(native)}")
        elif kind == "N":
            official = self.origins.stack_has(frame.f_back, "O")
            if official is not None:
                self.violation(f"the port's {frame.f_code.co_name} ran under official code {_where(official)} "
                               "(the official reference was patched)")

    def install_watch(self) -> None:
        self.installing = True
        try:
            sys.addaudithook(self.audit)
            sys.setprofile(self.profiler)
            threading.setprofile(self.profiler)
        finally:
            self.installing = False

    # -- integrity --
    def check(self, where: str) -> None:
        if self.snapshot is not None:
            for change in self.snapshot.changes():
                self.violation(f"{change} ({where})")
        if sys.getprofile() is not self.profiler or getattr(threading, "_profile_hook", None) is not self.profiler:
            self.violation(f"the harness's profile function was removed ({where})")
        self._check_plugins(where)
        self._check_test_modules(where)

    def _check_plugins(self, where: str) -> None:
        pm = self.pm
        for plugin in pm.get_plugins():
            if id(plugin) not in self.plugins_at_start and not self._legit_late_plugin(plugin):
                self.violation(f"a pytest plugin was registered at run time: {_short(repr(plugin))} ({where})")
        for hook_name in dir(pm.hook):
            caller = getattr(pm.hook, hook_name, None)
            if not hasattr(caller, "get_hookimpls"):
                continue
            for impl in caller.get_hookimpls():
                before = self.hookimpls.get((id(impl.plugin), hook_name))
                if before is not None and before != id(impl.function):
                    self.violation(f"pytest hook {hook_name} of {impl.plugin_name} was replaced ({where})")
                elif before is None and id(impl.plugin) in self.plugins_at_start:
                    self.violation(f"pytest hook {hook_name} was added to {impl.plugin_name} ({where})")

    def _legit_late_plugin(self, plugin: object) -> bool:
        if isinstance(plugin, types.ModuleType):
            f = str(getattr(plugin, "__file__", "") or "")
            return f in self.trusted_conftests
        return type(plugin).__module__.split(".")[0] in ("_pytest", "pytest", "pluggy")

    def _check_test_modules(self, where: str) -> None:
        for name, (mod, expected, functions) in self.test_modules.items():
            now = _namespace(mod)
            for attr, obj in expected.items():
                if now.get(attr) is not obj:
                    self.violation(f"{name}.{attr} is no longer what its import bound ({where})")
            for attr, (obj, state) in functions.items():
                if now.get(attr) is not obj or _fn_state(obj) != state:
                    self.violation(f"{name}.{attr} was replaced or changed ({where})")

    def watch_test_module(self, mod: types.ModuleType) -> None:
        import ast

        name = mod.__name__
        if name in self.test_modules or not getattr(mod, "__file__", None):
            return
        try:
            tree = ast.parse(open(mod.__file__, encoding="utf-8").read())
        except (OSError, SyntaxError):
            return
        expected: dict[str, object] = {}
        assert self.snapshot is not None
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in self.snapshot.modules:
                source = self.snapshot.module_items[node.module]
                for alias in node.names:
                    if alias.name in source:
                        expected[alias.asname or alias.name] = source[alias.name][0]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    module = alias.name if alias.asname else alias.name.split(".")[0]
                    expected[bound] = self.snapshot.modules.get(module)
        expected = {k: v for k, v in expected.items() if v is not None}
        functions = {k: (v, _fn_state(v)) for k, v in _namespace(mod).items()
                     if isinstance(v, types.FunctionType) and v.__module__ == name}
        self.test_modules[name] = (mod, expected, functions)
        for attr, obj in expected.items():  # an import-time patch is caught at once
            if _namespace(mod).get(attr) is not obj:
                self.violation(f"{name}.{attr} is not what its import bound (collection)")

    def official_loaded(self) -> list[str]:
        names = []
        for name, mod in list(sys.modules.items()):
            f = str(getattr(mod, "__file__", "") or "")
            if self.origins.official and f.startswith(self.origins.official):
                names.append(name)
        return sorted(names)

    # -- pytest hooks --
    def pytest_configure(self, config) -> None:
        self.pm = config.pluginmanager
        modules, classes = _watched()
        modules[__name__] = sys.modules[__name__]
        classes.append(VerdictPlugin)
        self.snapshot = _Snapshot(modules, classes)
        self.plugins_at_start = {id(p) for p in self.pm.get_plugins()}
        self._remember_hookimpls()
        import atexit

        self.atexit_count = atexit._ncallbacks()
        self.install_watch()
        self.stream.send("start", pid=os.getpid(), python=sys.version.split()[0],
                         plugins=sorted(str(n) for n, _ in self.pm.list_name_plugin()))

    def _remember_hookimpls(self) -> None:
        for hook_name in dir(self.pm.hook):
            caller = getattr(self.pm.hook, hook_name, None)
            if hasattr(caller, "get_hookimpls"):
                for impl in caller.get_hookimpls():
                    self.hookimpls[(id(impl.plugin), hook_name)] = id(impl.function)

    def pytest_plugin_registered(self, plugin, manager) -> None:
        if self.snapshot is not None and self._legit_late_plugin(plugin):
            for hook_name in dir(manager.hook):
                caller = getattr(manager.hook, hook_name, None)
                if hasattr(caller, "get_hookimpls"):
                    for impl in caller.get_hookimpls():
                        if impl.plugin is plugin:
                            self.hookimpls[(id(plugin), hook_name)] = id(impl.function)

    def pytest_collection_finish(self, session) -> None:
        for item in session.items:
            mod = getattr(item, "module", None)
            if isinstance(mod, types.ModuleType):
                self.watch_test_module(mod)
        self.stream.send("collected", ids=[item.nodeid for item in session.items])
        self.check("after collection")

    def pytest_runtest_makereport(self, item, call):  # hookwrapper, see below
        outcome = yield
        report = outcome.get_result()
        raised = None
        if call.excinfo is not None:
            raised = call.excinfo.typename
        self.stream.send("phase", id=item.nodeid, when=call.when, raised=raised,
                         outcome=getattr(report, "outcome", None))

    def pytest_runtest_logreport(self, report) -> None:
        longrepr = _short(getattr(report, "longreprtext", "") or "") if report.outcome != "passed" else ""
        self.stream.send("report", id=report.nodeid, when=report.when, outcome=report.outcome,
                         wasxfail=hasattr(report, "wasxfail"), longrepr=longrepr)

    def pytest_runtest_logfinish(self, nodeid, location) -> None:
        self.check(f"after {nodeid}")

    def pytest_collectreport(self, report) -> None:
        if report.outcome != "passed":
            self.stream.send("collect_error", id=report.nodeid, outcome=report.outcome,
                             longrepr=_short(getattr(report, "longreprtext", "") or ""))

    def pytest_sessionfinish(self, session, exitstatus) -> None:
        self.exitstatus = int(exitstatus)
        self.check("at session end")
        self.stream.send("official", modules=fingerprint(self.official_loaded()))
        self.stream.send("finish", exitstatus=self.exitstatus, violations=len(self.violations))

    def pytest_unconfigure(self, config) -> None:
        # Nothing the tested code registered (atexit handlers, finalizers, threads) runs after this.
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        self.stream.send("end", exitstatus=self.exitstatus)
        status = self.exitstatus if self.exitstatus is not None else 3
        _exit(status if not self.violations else max(status, 1))


def _hookimpl_markers(plugin: VerdictPlugin) -> None:
    import pytest

    hookimpl = pytest.hookimpl
    cls = type(plugin)
    cls.pytest_configure = hookimpl(tryfirst=True)(cls.pytest_configure)
    cls.pytest_runtest_makereport = hookimpl(hookwrapper=True, tryfirst=True)(cls.pytest_runtest_makereport)
    cls.pytest_sessionfinish = hookimpl(trylast=True)(cls.pytest_sessionfinish)
    cls.pytest_unconfigure = hookimpl(trylast=True)(cls.pytest_unconfigure)


def _load_config() -> dict:
    with open(os.environ[CONFIG_ENV], encoding="utf-8") as f:
        return json.load(f)


def pytest_addhooks(pluginmanager) -> None:
    """Loaded with `-p`: register the plugin object before any other plugin is configured."""
    plugin = VerdictPlugin(_load_config())
    _hookimpl_markers(plugin)
    pluginmanager.register(plugin, "harness-verdict")


# ----- the cross-checks run in fresh processes ----------------------------------------------

def _cross_fingerprint(args: dict) -> dict:
    sys.path.insert(0, args["official"])
    import importlib

    for name in args["modules"]:
        try:
            importlib.import_module(name)
        except Exception as exc:  # reported: a module that only imports in the test's process
            return {"error": f"{name}: {type(exc).__name__}: {exc}"}
    return {"modules": fingerprint(args["modules"])}


def _cross_native(args: dict) -> dict:
    """Import the port's modules with every way into the official reference closed."""
    official = args.get("official")
    names = set(args.get("official_modules") or [])
    blocked: list[str] = []

    def deny(event: str, a: tuple) -> None:
        if event == "import" and (str(a[0]).split(".")[0] in names or (official and str(a[1] or "").startswith(official))):
            blocked.append(f"import {a[0]}")
            raise ImportError(f"the official module {a[0]} is not reachable from the port")
        if event == "open" and official and isinstance(a[0], str) and os.path.abspath(a[0]).startswith(official):
            blocked.append(f"open {a[0]}")
            raise PermissionError(f"{a[0]} is in the official reference")

    sys.addaudithook(deny)
    import importlib

    errors = {}
    for name in args["native_modules"]:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # any failure is reported, never raised
            errors[name] = f"{type(exc).__name__}: {_short(exc)}"
    return {"blocked": blocked, "errors": errors}


if __name__ == "__main__":
    _mode, _args = sys.argv[1], json.loads(sys.argv[2])
    _result = _cross_fingerprint(_args) if _mode == "fingerprint" else _cross_native(_args)
    sys.stdout.write("\n" + _args["marker"] + "\n" + json.dumps(_result) + "\n")
    sys.stdout.flush()
    _exit(0)
