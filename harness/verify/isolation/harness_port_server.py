"""The verdict's port process: imports the agent's code and serves the trusted test process.

    python -P -B harness_port_server.py CONFIG_JSON

It connects to the trusted process's socket before any code of the port is imported, says
hello (or why it refuses to serve), then answers one request at a time: import a module of
the port's packages, get or set an attribute, call, index, iterate, repr ... on objects it
holds. Objects of the port stay here and travel as handles; data travels by value (see
harness_wire). Every request carries the test's ambient state (grad mode, inference mode,
autocast, default dtype and device, deterministic flags, the RNG states, environment
changes, the working directory), applied here before the request runs. Nothing flows back
but the reply: what the port draws from its RNG (or from a generator the test passed) never
moves the test's own random streams, so the port cannot steer the test's next inputs.

Whatever the port does to this process stays in it: the trusted side checks every frame it
receives and builds only plain values from it.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import ctypes
import gc
import importlib
import importlib.util
import json
import marshal
import os
import random
import socket
import sys
import time
import traceback
import types

import torch

import harness_wire as wire

_HIDDEN = ("pytest", "_pytest", "pluggy", "harness_verdict_plugin", "harness_port_client")
_MAX_ITEMS = 1_000_000
_MAX_TEXT = 20_000
_OUTPUT_BASES = (("transformers.utils.generic", "ModelOutput"), ("diffusers.utils.outputs", "BaseOutput"))


class _HidingFinder:
    """A path entry's finder that does not see pytest or the trusted side's modules, so that
    for the port they are simply not installed (`find_spec` gives None, imports fail). This
    is the port's view of its world, not a boundary: nothing here reaches the trusted process."""

    def __init__(self, finder: object) -> None:
        self.finder = finder

    def find_spec(self, name: str, target: object = None):
        if name.partition(".")[0] in _HIDDEN:
            return None
        return self.finder.find_spec(name, target)

    def __getattr__(self, name: str) -> object:
        return getattr(self.finder, name)


def _hide_test_machinery() -> None:
    def hook_for(hook):
        def wrapped(entry):
            return _HidingFinder(hook(entry))
        return wrapped

    sys.path_hooks[:] = [hook_for(h) for h in sys.path_hooks]
    sys.path_importer_cache.clear()
    for name in [n for n in sys.modules if n.partition(".")[0] in _HIDDEN]:
        del sys.modules[name]


def _connect(path: str, timeout_s: float) -> socket.socket:
    deadline = time.monotonic() + timeout_s
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return sock
        except OSError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _official_importable(names: list[str]) -> list[str]:
    found = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        places = [spec.origin] if spec.origin and spec.origin not in ("built-in", "frozen") else []
        places += list(spec.submodule_search_locations or [])
        if any(os.path.exists(p) for p in places):
            found.append(f"{name} ({places[0]})")
    return found


def main(argv: list[str]) -> int:
    config = json.loads(argv[1])
    _hide_test_machinery()
    gc.freeze()  # torch's and the server's objects: the collections while the port runs skip them
    sock = _connect(config["socket"], float(config.get("connect_timeout_s", 300)))
    refused = _official_importable(list(config.get("official_modules") or []))
    hello = {"hello": 1, "pid": os.getpid(), "python": sys.version.split()[0], "torch": torch.__version__}
    if refused:
        hello["refused"] = ("the official reference is importable in the port's sandbox: " + ", ".join(refused)
                            + "; install it from its folder (editable) or put it on PYTHONPATH only, so the port "
                            "cannot reach it")
    wire.send_frame(sock, hello, [])
    if refused:
        return 3
    Server(sock, config).serve()
    return 0


class Server:
    def __init__(self, sock: socket.socket, config: dict) -> None:
        self.sock = sock
        self.packages = set(config.get("packages") or [])
        self.max_bytes = int(config.get("max_bytes", 1 << 36))
        self.objects: dict[int, object] = {}
        self.ids: dict[int, int] = {}
        self.sent: dict[int, int] = {}
        self.next_hid = 1
        self.codec = PortCodec(self)
        self.env_base = dict(os.environ)
        self.env_applied: set[str] = set()
        self.owned: set[int] | None = None

    # -- the handle table --
    def handle(self, obj: object) -> int:
        hid = self.ids.get(id(obj))
        if hid is None or self.objects.get(hid) is not obj:
            hid = self.next_hid
            self.next_hid += 1
            self.objects[hid] = obj
            self.ids[id(obj)] = hid
        self.sent[hid] = self.sent.get(hid, 0) + 1
        return hid

    def release(self, pairs: object) -> None:
        for pair in pairs if isinstance(pairs, list) else []:
            if not (isinstance(pair, list) and len(pair) == 2):
                continue
            hid, count = pair
            left = self.sent.get(hid, 0) - int(count)
            if left > 0:
                self.sent[hid] = left
                continue
            obj = self.objects.pop(hid, None)
            self.sent.pop(hid, None)
            if obj is not None and self.ids.get(id(obj)) == hid:
                del self.ids[id(obj)]

    def owned_storages(self) -> set[int]:
        """Storage addresses of every parameter and buffer of the modules the trusted side holds:
        a tensor sharing one is the port's state, which the test may read but not edit in place."""
        if self.owned is None:
            nn = torch.nn
            owned = set()
            for obj in list(self.objects.values()):
                if isinstance(obj, nn.Module):
                    for t in (*obj.parameters(), *obj.buffers()):
                        with contextlib.suppress(Exception):
                            owned.add(t.untyped_storage().data_ptr())
            self.owned = owned
        return self.owned

    # -- the loop --
    def serve(self) -> None:
        while True:
            try:
                header, bufs = wire.recv_frame(self.sock, self.max_bytes)
            except wire.WireClosed:
                return
            self.release(header.get("rel"))
            op = header.get("op")
            if op == "bye":
                wire.send_frame(self.sock, {"ok": None}, [])
                return
            self.owned = None
            try:
                args = self.codec.decode(header.get("a"), bufs)
                with self.ambient(header, bufs):
                    result = self.run(str(op), args)
                    out, out_bufs = self.codec.encode(result)
                reply = {"ok": out}
            except BaseException as exc:  # the port's error, or its SystemExit: reported, never raised here
                if isinstance(exc, (KeyboardInterrupt,)):
                    raise
                reply, out_bufs = {"err": self.error(exc)}, []
            wire.send_frame(self.sock, reply, out_bufs)

    def error(self, exc: BaseException) -> dict:
        bases = [c.__name__ for c in type(exc).__mro__ if c.__module__ == "builtins"]
        text = "".join(traceback.format_exception(exc))
        err = {"type": type(exc).__qualname__, "module": type(exc).__module__, "bases": bases,
               "msg": _cut(str(exc)), "tb": _cut(text)}
        if isinstance(exc, ImportError) and exc.name:
            err["name"] = str(exc.name)
        return err

    def run(self, op: str, a: object) -> object:
        if not isinstance(a, dict):
            raise TypeError("request arguments must be a dict")
        target = a.get("t")
        if op == "import":
            module = importlib.import_module(str(a["name"]))
            path = getattr(module, "__file__", None)
            return {"pkg": hasattr(module, "__path__"), "file": path if isinstance(path, str) else None,
                    "h": self.handle(module)}
        if op == "getattr":
            return getattr(target, str(a["n"]))
        if op == "setattr":
            setattr(target, str(a["n"]), a.get("v"))
            return None
        if op == "delattr":
            delattr(target, str(a["n"]))
            return None
        if op == "call":
            return target(*list(a.get("args") or []), **dict(a.get("kwargs") or {}))
        if op == "getitem":
            return target[a.get("k")]
        if op == "setitem":
            target[a.get("k")] = a.get("v")
            return None
        if op == "delitem":
            del target[a.get("k")]
            return None
        if op == "contains":
            return a.get("v") in target
        if op == "len":
            return len(target)
        if op == "iter":
            items = []
            for item in target:
                items.append(item)
                if len(items) > _MAX_ITEMS:
                    raise OverflowError(f"iterating the port object gave more than {_MAX_ITEMS} items")
            return items
        if op == "repr":
            return _cut(repr(target))
        if op == "str":
            return _cut(str(target))
        if op == "dir":
            return [str(n) for n in dir(target)]
        if op == "isinstance":
            return isinstance(target, a["cls"])
        if op == "issubclass":
            return isinstance(target, type) and isinstance(a["cls"], type) and issubclass(target, a["cls"])
        raise ValueError(f"unknown request {op!r}")

    # -- ambient state --
    @contextlib.contextmanager
    def ambient(self, header: dict, bufs: list):
        glob = header.get("glob")
        if isinstance(glob, dict):
            self.apply_globals(glob)
        env = header.get("env")
        if isinstance(env, dict):
            self.apply_env(env)
        cwd = header.get("cwd")
        if isinstance(cwd, str) and os.path.isdir(cwd):
            with contextlib.suppress(OSError):
                os.chdir(cwd)
        rng = header.get("rng")
        if isinstance(rng, dict):
            self.apply_rng(self.codec.decode(rng, bufs))
        ctx = header.get("ctx") if isinstance(header.get("ctx"), dict) else {}
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.set_grad_enabled(bool(ctx.get("grad", True))))
            if ctx.get("inf"):
                stack.enter_context(torch.inference_mode(True))
            for device_type, dtype_name in ctx.get("ac") or []:
                dtype = wire.DTYPES.get(dtype_name)
                stack.enter_context(torch.autocast(device_type=str(device_type), dtype=dtype))
            yield

    def apply_globals(self, glob: dict) -> None:
        if glob.get("dtype") in wire.DTYPES:
            torch.set_default_dtype(wire.DTYPES[glob["dtype"]])
        if isinstance(glob.get("device"), str) and hasattr(torch, "set_default_device"):
            with contextlib.suppress(Exception):
                torch.set_default_device(None if glob["device"] == "cpu" else glob["device"])
        det = glob.get("det")
        if isinstance(det, list) and len(det) == 2:
            mode, warn_only = bool(det[0]), bool(det[1])
            # Only on a change: the call imports torch._inductor and torch._dynamo (seconds, on
            # the first request, while the trusted process waits).
            if (mode, warn_only) != (torch.are_deterministic_algorithms_enabled(),
                                     torch.is_deterministic_algorithms_warn_only_enabled()):
                torch.use_deterministic_algorithms(mode, warn_only=warn_only)
        if isinstance(glob.get("mmp"), str):
            torch.set_float32_matmul_precision(glob["mmp"])
        cudnn = glob.get("cudnn")
        if isinstance(cudnn, list) and len(cudnn) == 3:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = (
                bool(x) for x in cudnn)
        if isinstance(glob.get("tf32"), bool):
            torch.backends.cuda.matmul.allow_tf32 = glob["tf32"]

    def apply_env(self, env: dict) -> None:
        """The trusted side's environment changes since its start, over this process's own."""
        changes = env.get("set") if isinstance(env.get("set"), dict) else {}
        removed = [k for k in env.get("del") or [] if isinstance(k, str)]
        for key in self.env_applied - set(changes) - set(removed):
            if key in self.env_base:
                os.environ[key] = self.env_base[key]
            else:
                os.environ.pop(key, None)
        for key, value in changes.items():
            if isinstance(key, str) and isinstance(value, str) and "\0" not in key + value and key:
                os.environ[key] = value
        for key in removed:
            os.environ.pop(key, None)
        self.env_applied = set(changes) | set(removed)

    def apply_rng(self, states: object) -> None:
        if not isinstance(states, dict):
            return
        if isinstance(states.get("cpu"), torch.Tensor):
            torch.set_rng_state(states["cpu"])
        if states.get("py") is not None:
            random.setstate(_as_random_state(states["py"]))
        if isinstance(states.get("cuda"), list) and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
        if states.get("np") is not None:
            import numpy

            numpy.random.set_state(tuple(states["np"]))

def _as_random_state(value: object) -> tuple:
    version, internal, gauss = value  # type: ignore[misc]
    return (version, tuple(internal), gauss)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"... [{len(text) - _MAX_TEXT} more characters]"


def _is_output(obj: object) -> bool:
    return any((c.__module__, c.__name__) in _OUTPUT_BASES for c in type(obj).__mro__)


class PortCodec(wire.Codec):
    """The port side of the codec: objects of the port become handles; library outputs and
    named tuples travel as records, iterators as their items; a tensor that shares storage
    with a parameter or buffer of a module the trusted side holds is marked as port state."""

    keep_grad = True

    def __init__(self, server: Server) -> None:
        self.server = server

    def in_port(self, module: object) -> bool:
        return isinstance(module, str) and module.partition(".")[0] in self.server.packages

    def tensor_extra(self, t: torch.Tensor) -> dict:
        if isinstance(t, torch.nn.Parameter):
            return {"st": 1}
        try:
            ptr = t.untyped_storage().data_ptr()
        except Exception:
            return {}
        return {"st": 1} if ptr and ptr in self.server.owned_storages() else {}

    def encode_other(self, v: object, bufs: list, depth: int) -> object:
        server = self.server
        if isinstance(v, types.ModuleType) and self.in_port(v.__name__):
            return {"$mod": v.__name__}
        if isinstance(v, type) and issubclass(v, BaseException):
            bases = [c.__name__ for c in v.__mro__ if c.__module__ == "builtins"]
            return {"$exc": [v.__module__, v.__qualname__, bases, server.handle(v)]}
        if isinstance(v, tuple) and hasattr(type(v), "_fields"):
            cls = type(v)
            fields = [[str(name), self.enc(value, bufs, depth)] for name, value in zip(cls._fields, v)]
            return {"$rec": [cls.__module__, cls.__qualname__, fields, "nt"]}
        if _is_output(v) and not self.in_port(type(v).__module__):
            cls = type(v)
            fields = [[str(k), self.enc(x, bufs, depth)] for k, x in v.items()]
            return {"$rec": [cls.__module__, cls.__qualname__, fields, "out"]}
        if isinstance(v, (types.GeneratorType, map, filter, zip, enumerate, reversed)) or (
                type(v).__name__.endswith("iterator") and type(v).__module__ == "builtins"):
            items = []
            for item in v:
                items.append(self.enc(item, bufs, depth))
                if len(items) > _MAX_ITEMS:
                    raise OverflowError(f"a port iterator gave more than {_MAX_ITEMS} items")
            return {"$it": items}
        kind = "cls" if isinstance(v, type) else "obj" if isinstance(v, torch.nn.Module) or not callable(v) else "fn"
        return {"$h": [server.handle(v), kind, f"{type(v).__module__}.{type(v).__qualname__}"]}

    def decode_other(self, tag: str, node: dict, bufs: list, depth: int) -> object:
        body = node[tag]
        server = self.server
        if tag == "$h":
            if body not in server.objects:
                raise KeyError(f"no port object #{body} (released)")
            return server.objects[body]
        if tag == "$ref":
            module, qualname = body
            return _resolve(module, qualname)
        if tag == "$modref":
            return importlib.import_module(str(body))
        if tag == "$fn":  # a pure callback of the test's, as its code
            index, name, globs, closure, defaults, kwdefaults = body
            namespace = {"__builtins__": builtins}
            namespace.update((str(k), self.dec(v, bufs, depth)) for k, v in globs)
            cells = tuple(types.CellType(self.dec(v, bufs, depth)) for v in closure)
            fn = types.FunctionType(marshal.loads(bytes(bufs[index])), namespace, str(name),
                                    tuple(self.dec(v, bufs, depth) for v in defaults) or None, cells or None)
            fn.__kwdefaults__ = {str(k): self.dec(v, bufs, depth) for k, v in kwdefaults} or None
            return fn
        if tag == "$gen":
            device, state = body
            gen = torch.Generator(device=str(device))
            gen.set_state(self.dec(state, bufs, depth))
            return gen
        if tag == "$rec":
            module, qualname, fields, kind = body
            values = collections.OrderedDict((str(k), self.dec(x, bufs, depth)) for k, x in fields)
            try:
                cls = _resolve(module, qualname)
            except (ImportError, AttributeError):
                cls = None
            if kind == "nt":
                if not (isinstance(cls, type) and issubclass(cls, tuple)):
                    cls = collections.namedtuple(qualname.rpartition(".")[2], list(values))
                return cls(*values.values())
            return dict(values) if cls is None else cls(**values)
        raise ValueError(f"unknown tag {tag}")


def _resolve(module: str, qualname: str | None) -> object:
    obj = importlib.import_module(module)
    for part in qualname.split(".") if qualname else []:
        obj = getattr(obj, part)
    return obj


def _end(code: int) -> None:
    """End at once, output flushed: with torch imported, the interpreter's teardown takes a
    second or more of CPU while the verdict waits; nothing of the port's may run after this."""
    sys.stdout.flush()
    sys.stderr.flush()
    ctypes.CDLL(None).fflush(None)
    os._exit(code)


if __name__ == "__main__":
    _end(main(sys.argv))
