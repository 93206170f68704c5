"""The trusted side of the verdict's isolation: the channel to the port process, the proxies
that stand for the port's objects, and the import finder that serves the port's packages.

Every import of a port package (`fastvideo` ...) in the trusted process yields a proxy module;
its attributes are fetched from the port process: data by value (plain tensors, numbers,
strings, containers, library output objects rebuilt here from trusted classes), everything
else as a `RemoteObject` handle. A handle is never a value: `==`, `bool()`, arithmetic, use as
a tensor or an array raise `PortValueError` (a TypeError: the test fails, as it would on any
wrong type). What the isolation cannot carry faithfully raises `IsolationLimit`: a callback or
an official object passed into port code, an in-place edit of the port's parameters from the
test side, subclassing a port class, pickling a handle, `torch.compile` of a port object, a
lazy iterator of the port's (other than a module's parameters, buffers and submodules). The
plugin turns any IsolationLimit into a `blocked` verdict, whether or not the test caught it.
"""

from __future__ import annotations

import builtins
import collections
import importlib
import importlib.machinery
import marshal
import os
import random
import socket
import sys
import threading
import time
import types
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils.weak import WeakIdKeyDictionary

import harness_wire as wire

LIMITS: list[dict] = []  # every IsolationLimit raised, in order (the plugin reads them)
CURRENT_TEST: list[str] = [""]
_TRUSTED_OUTPUT_LIBS = ("transformers", "diffusers")
_LOCAL_MODULE_ATTRS = frozenset({"__spec__", "__loader__", "__path__", "__file__", "__cached__", "__package__",
                                 "__name__", "__builtins__", "__dict__", "__class__", "__doc__"})
# Probes that libraries make on any object; a port object has none of these here.
_LOCAL_DUNDERS = frozenset({"__array_interface__", "__array_struct__", "__array__", "__cuda_array_interface__",
                            "__dlpack__", "__dlpack_device__", "__fspath__", "__torch_function__",
                            "__torch_dispatch__", "__array_priority__", "__await__", "__aiter__", "__length_hint__",
                            "_fields", "__dataclass_fields__", "__attrs_attrs__", "__getnewargs_ex__",
                            "__getnewargs__", "__getstate__", "__reduce__", "__reduce_ex__", "__copy__",
                            "__deepcopy__", "__set_name__", "__slots__", "__origin__", "__parameters__",
                            "__wrapped__", "_is_protocol", "__func__", "__self__", "__code__"})


class IsolationLimit(Exception):
    """The test did something the isolation cannot carry faithfully: the verdict is blocked."""

    def __init__(self, what: str, remedy: str = "") -> None:
        frame = _test_frame()
        self.what, self.remedy = what, remedy
        LIMITS.append({"test": CURRENT_TEST[0], "what": what, "remedy": remedy, "where": frame})
        super().__init__(f"{what} (isolation limit; the verdict is blocked{': ' + remedy if remedy else ''})")


class PortValueError(TypeError):
    """A port object used as a value (compared, tested for truth, computed with): it is a handle."""


class RemoteError(RuntimeError):
    """An exception of the port process whose class has no trusted counterpart."""


class PortProcessError(RuntimeError):
    """The port process is gone, refused to serve, or broke the wire format."""


def _test_frame() -> str:
    """Where the test's own code (a file of the trusted tree) made the call: the innermost such
    frame, else the innermost frame outside this module."""
    tree = (CHANNEL[0].tree.rstrip("/") + "/") if CHANNEL[0] and CHANNEL[0].tree else None
    here = os.path.dirname(__file__)
    frame, fallback = sys._getframe(2), ""
    while frame is not None:
        name = frame.f_code.co_filename
        if tree and name.startswith(tree) and not name.startswith(here):
            return f"{name[len(tree):]}:{frame.f_lineno}"
        if not fallback and not name.startswith(here):
            fallback = f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return fallback


# ----- port state: tensors that alias the port's parameters and buffers ---------------------------

class PortState:
    """Tensors the port marked as its own state. Reading them is fine; editing them in place
    would, in one process, have edited the port's model: that cannot be carried, so it is an
    IsolationLimit."""

    def __init__(self) -> None:
        self.tensors = WeakIdKeyDictionary()
        self._ptrs: set[int] | None = None

    def add(self, t: torch.Tensor) -> None:
        self.tensors[t] = True
        self._ptrs = None
        weakref.finalize(t, self._forget)

    def _forget(self) -> None:
        self._ptrs = None

    def ptrs(self) -> set[int]:
        if self._ptrs is None:
            self._ptrs = {t.untyped_storage().data_ptr() for t in list(self.tensors.keys())}
        return self._ptrs


PORT_STATE = PortState()
_NOT_MUTATING = frozenset({"requires_grad_", "retain_grad", "share_memory_", "record_stream", "pin_memory"})
_MUTATING = frozenset({"__setitem__", "__set__", "set_", "__iadd__", "__isub__", "__imul__", "__itruediv__",
                       "__ifloordiv__", "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__",
                       "__irshift__", "__imatmul__"})


def _mutates(func: object) -> bool:
    name = getattr(func, "__name__", "")
    return name in _MUTATING or (name.endswith("_") and not name.endswith("__") and name not in _NOT_MUTATING)


class PortStateGuard(TorchFunctionMode):
    """Active while a test runs: an in-place op on a tensor sharing storage with the port's
    state fails closed."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if PORT_STATE.tensors and _mutates(func) or kwargs.get("out") is not None:
            ptrs = PORT_STATE.ptrs()
            targets = [args[0]] if args else []
            out = kwargs.get("out")
            targets += list(out) if isinstance(out, (tuple, list)) else [out] if out is not None else []
            for target in targets:
                if isinstance(target, torch.Tensor) and target.untyped_storage().data_ptr() in ptrs:
                    name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
                    raise IsolationLimit(
                        f"the test edits a parameter or buffer of the port in place ({name})",
                        "load new weights through the port's own methods (load_state_dict, a loader) instead "
                        "of writing into its tensors")
        return func(*args, **kwargs)


# ----- the channel ---------------------------------------------------------------------------------

class Channel:
    """One connection to the port process; requests are serialised (a lock) and carry the
    ambient state each time it changed."""

    def __init__(self, config: dict) -> None:
        self.path = config["socket"]
        self.packages = set(config.get("packages") or [])
        self.official = set(config.get("official_modules") or [])
        self.tree = str(config.get("tree") or "")
        self.port_tree = str(config.get("port_tree") or self.tree)
        self.max_bytes = int(config.get("max_bytes", 1 << 36))
        self.accept_timeout = float(config.get("accept_timeout_s", 300))
        self.pid = os.getpid()
        self.lock = threading.RLock()
        self.sock: socket.socket | None = None
        self.broken: str | None = None
        self.calls = 0
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        os.chmod(self.path, 0o777)  # the port runs as the same uid, or as another one in docker
        self.listener.listen(1)
        self.proxies: weakref.WeakValueDictionary[int, RemoteObject] = weakref.WeakValueDictionary()
        self.released: list[list[int]] = []
        self.codec = TrustedCodec(self)
        self.env_base = dict(os.environ)
        self.env_sent: dict[str, str] = dict(os.environ)
        self.cwd_sent = os.getcwd()
        self.glob_sent: dict | None = None
        self.rng_sent: dict[str, object] = {}

    def _connect(self) -> socket.socket:
        if self.broken:
            raise PortProcessError(self.broken)
        if self.sock is None:
            self.listener.settimeout(self.accept_timeout)
            try:
                sock, _ = self.listener.accept()
            except OSError as exc:
                self.broken = f"the port process did not connect within {self.accept_timeout:.0f}s ({exc})"
                raise PortProcessError(self.broken) from None
            finally:
                self.listener.close()  # one connection only: the harness's server, first
            sock.settimeout(None)
            try:
                hello, _ = wire.recv_frame(sock, 1 << 20)
            except wire.WireError as exc:
                self.broken = f"the port process did not say hello: {exc}"
                raise PortProcessError(self.broken) from None
            if hello.get("refused"):
                self.broken = f"the port process refused to serve: {hello['refused']}"
                raise PortProcessError(self.broken)
            self.sock = sock
        return self.sock

    def request(self, op: str, **args: object) -> object:
        __tracebackhide__ = True  # a failure shows the test's line and the port's traceback text
        if os.getpid() != self.pid:
            raise IsolationLimit("port objects used from a forked child process",
                                 "use the port's objects from the test's own process")
        with self.lock:
            sock = self._connect()
            target = args.get("t")
            method = target._attr if op == "call" and isinstance(target, RemoteObject) else None
            self.codec.context = (op, args.get("n") if op == "getattr" else method)
            tree, bufs = self.codec.encode(args)
            header: dict = {"op": op, "a": tree, "ctx": _context()}
            if self.released:
                header["rel"], self.released = self.released, []
            self._ambient(header, bufs)
            try:
                wire.send_frame(sock, header, bufs)
                reply, rbufs = wire.recv_frame(sock, self.max_bytes)
            except (OSError, wire.WireError) as exc:
                self.broken = f"lost the port process during {op}: {exc}"
                raise PortProcessError(self.broken) from None
            self.calls += 1
            try:
                if "err" in reply:
                    raise _port_exception(reply["err"], self)
                value = self.codec.decode(reply.get("ok"), rbufs)
                return freeze(value, str(args.get("n"))) if op == "getattr" else value
            except wire.WireError as exc:
                self.broken = f"the port process broke the wire format: {exc}"
                raise PortProcessError(self.broken) from None

    def _ambient(self, header: dict, bufs: list) -> None:
        glob = _globals()
        if glob != self.glob_sent:
            header["glob"] = self.glob_sent = glob
        env = dict(os.environ)
        if env != self.env_sent:
            self.env_sent = env
            header["env"] = {"set": {k: v for k, v in env.items() if self.env_base.get(k) != v},
                             "del": [k for k in self.env_base if k not in env]}
        cwd = os.getcwd()
        if cwd != self.cwd_sent:
            header["cwd"] = self.cwd_sent = cwd
        states = _rng_states()
        changed = {k: v for k, v in states.items() if not _same_state(v, self.rng_sent.get(k))}
        if changed:
            # The port's own draws never come back: what it consumed is re-sent as it was here.
            header["rng"] = self.codec.enc(states, bufs, 0)
            self.rng_sent = states

    def bye(self) -> None:
        with self.lock:
            if self.sock is not None and not self.broken:
                try:
                    wire.send_frame(self.sock, {"op": "bye"}, [])
                    wire.recv_frame(self.sock, 1 << 20)
                except (OSError, wire.WireError):
                    pass
            if self.sock is not None:
                self.sock.close()
            self.broken = self.broken or "closed"
            try:
                self.listener.close()
            except OSError:
                pass

    def port_path(self, path: object) -> object:
        """A path the port reports, as this side sees the same file."""
        if isinstance(path, str) and self.port_tree != self.tree and path.startswith(self.port_tree):
            return self.tree + path[len(self.port_tree):]
        return path


def _context() -> dict:
    ctx: dict = {"grad": torch.is_grad_enabled(), "inf": torch.is_inference_mode_enabled()}
    autocast = []
    for device_type in ("cpu", "cuda"):
        try:
            if torch.is_autocast_enabled(device_type):
                autocast.append([device_type, wire._DTYPE_OF.get(torch.get_autocast_dtype(device_type))])
        except (AttributeError, RuntimeError, TypeError):
            pass
    if autocast:
        ctx["ac"] = autocast
    return ctx


def _globals() -> dict:
    glob = {"dtype": wire._DTYPE_OF.get(torch.get_default_dtype()),
            "det": [torch.are_deterministic_algorithms_enabled(),
                    torch.is_deterministic_algorithms_warn_only_enabled()],
            "mmp": torch.get_float32_matmul_precision(),
            "cudnn": [torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                      torch.backends.cudnn.allow_tf32],
            "tf32": torch.backends.cuda.matmul.allow_tf32}
    if hasattr(torch, "get_default_device"):
        glob["device"] = str(torch.get_default_device())
    return glob


def _rng_states() -> dict[str, object]:
    states: dict[str, object] = {"cpu": torch.get_rng_state(), "py": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        states["np"] = numpy.random.get_state()
    return states


def _same_state(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_state(x, y) for x, y in zip(a, b))
    if type(a).__module__ == "numpy" or type(b).__module__ == "numpy":
        import numpy

        return type(a) is type(b) and bool(numpy.array_equal(a, b))
    return a == b


# ----- exceptions from the port --------------------------------------------------------------------

_MIRRORS: dict[tuple[str, str], type] = {}
_SAFE_BUILTINS = frozenset(name for name, obj in vars(builtins).items()
                           if isinstance(obj, type) and issubclass(obj, Exception))


def mirror_exception(module: str, qualname: str, bases: list) -> type:
    """A trusted exception class standing for a port exception class: same name, the first
    builtin base it has; built here, so it behaves as that builtin does."""
    key = (str(module), str(qualname))
    if key not in _MIRRORS:
        base = next((getattr(builtins, b) for b in bases if b in _SAFE_BUILTINS), Exception)
        name = str(qualname).rpartition(".")[2]
        if not name.isidentifier():
            name = "PortException"
        _MIRRORS[key] = type(name, (base,), {"__module__": key[0], "__qualname__": key[1]})
    return _MIRRORS[key]


def _port_exception(err: object, channel: Channel) -> BaseException:
    if not isinstance(err, dict):
        return PortProcessError("the port process sent an unreadable error")
    module, qualname = str(err.get("module", "")), str(err.get("type", "Exception"))
    bases = [b for b in err.get("bases") or [] if isinstance(b, str)]
    text = f"{err.get('msg', '')}\n\n--- raised in the port process ---\n{err.get('tb', '')}"
    if module == "builtins" and qualname in _SAFE_BUILTINS:
        cls: type = getattr(builtins, qualname)
    elif module.partition(".")[0] in channel.packages:
        cls = mirror_exception(module, qualname, bases)
    else:
        cls = next((getattr(builtins, b) for b in bases if b in _SAFE_BUILTINS), RemoteError)
        text = f"{module}.{qualname}: {text}"
    try:
        exc = cls(text)
    except Exception:
        exc = RemoteError(text)
    if isinstance(exc, ImportError) and isinstance(err.get("name"), str):
        exc.name = err["name"]
    return exc


# ----- proxies -------------------------------------------------------------------------------------

def _limit(what: str) -> IsolationLimit:
    return IsolationLimit(what, "work with the values the port returns (tensors, numbers); objects of the port "
                                "stay in the port process")


class RemoteObject:
    """A handle to an object that lives in the port process."""

    __slots__ = ("_hid", "_kind", "_type", "_n", "_attr", "__weakref__")

    def __init__(self, hid: int, kind: str, typename: str, attr: str | None = None) -> None:
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_type", typename)
        object.__setattr__(self, "_n", 1)
        object.__setattr__(self, "_attr", attr)  # the attribute name it was fetched as, if any

    def __del__(self) -> None:
        channel = CHANNEL[0]
        if channel is not None:
            channel.released.append([self._hid, self._n])

    def __getattr__(self, name: str) -> object:
        if name in _LOCAL_DUNDERS:
            raise AttributeError(name)
        return _request("getattr", t=self, n=name)

    def __setattr__(self, name: str, value: object) -> None:
        _request("setattr", t=self, n=name, v=value)

    def __delattr__(self, name: str) -> None:
        _request("delattr", t=self, n=name)

    def __call__(self, *args: object, **kwargs: object) -> object:
        return _request("call", t=self, args=list(args), kwargs=kwargs)

    def __getitem__(self, key: object) -> object:
        return _request("getitem", t=self, k=key)

    def __setitem__(self, key: object, value: object) -> None:
        _request("setitem", t=self, k=key, v=value)

    def __delitem__(self, key: object) -> None:
        _request("delitem", t=self, k=key)

    def __len__(self) -> int:
        n = _request("len", t=self)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise PortProcessError("len() of a port object was not a non-negative int")
        return n

    def __iter__(self):
        items = _request("iter", t=self)
        if not isinstance(items, list):
            raise PortProcessError("iterating a port object gave no list")
        return iter(items)

    def __contains__(self, item: object) -> bool:
        return _request("contains", t=self, v=item) is True

    def __enter__(self) -> object:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: object) -> bool:
        self.__getattr__("__exit__")(None, None, None)
        return False

    def __repr__(self) -> str:
        try:
            text = _request("repr", t=self)
        except Exception:
            text = None
        return text if isinstance(text, str) else f"<port object #{self._hid} {self._type}>"

    def __str__(self) -> str:
        text = _request("str", t=self)
        return text if isinstance(text, str) else repr(self)

    def __dir__(self) -> list:
        names = _request("dir", t=self)
        return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

    def __instancecheck__(self, obj: object) -> bool:
        if self._kind != "cls":
            raise TypeError("isinstance() arg 2 must be a type, a tuple of types, or a union")
        if isinstance(obj, RemoteObject):
            return _request("isinstance", t=obj, cls=self) is True
        return False  # an object of the trusted side is never an instance of a port class

    def __subclasscheck__(self, cls: object) -> bool:
        if isinstance(cls, RemoteObject):
            return _request("issubclass", t=cls, cls=self) is True
        return False

    @property
    def __class__(self) -> type:  # noqa: F811  (the port class's name, for `obj.__class__.__name__`)
        return _stand_in(self._type)

    def __mro_entries__(self, bases: tuple) -> tuple:
        raise _limit(f"the test subclasses a class of the port ({self._type})")

    def __bool__(self) -> bool:
        raise _not_a_value(f"bool() of a port object ({self._type})")

    def __reduce_ex__(self, protocol: object) -> object:
        raise _limit(f"pickling a port object ({self._type})")

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__qualname__", getattr(func, "__name__", str(func)))
        raise _not_a_value(f"a port object used as a tensor in {name}")

    def __array__(self, *args: object, **kwargs: object) -> object:
        raise _not_a_value(f"a port object used as an array ({self._type})")

    __hash__ = object.__hash__


def _not_a_value(what: str) -> PortValueError:
    return PortValueError(f"{what}: a port object is a handle to an object in the port process, not a value; "
                          "compare the tensors or numbers it returns")


_STAND_INS: dict[str, type] = {}


def _stand_in(typename: str) -> type:
    """A local class named as the port object's class is (`module.Qualname`): what
    `obj.__class__` answers for a handle. It is a RemoteObject subclass, never the port's class."""
    if typename not in _STAND_INS:
        module, _, qualname = typename.rpartition(".")
        name = qualname if qualname.isidentifier() else "PortObject"
        _STAND_INS[typename] = type(name, (RemoteObject,), {"__slots__": (), "__module__": module or "port",
                                                            "__qualname__": name})
    return _STAND_INS[typename]


def _refuse(op: str):
    def method(self: RemoteObject, *args: object) -> object:
        raise _not_a_value(f"{op} on a port object ({self._type})")

    method.__name__ = op
    return method


for _op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__radd__", "__sub__", "__rsub__",
            "__mul__", "__rmul__", "__truediv__", "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__",
            "__rmod__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__",
            "__invert__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__",
            "__rshift__", "__int__", "__float__", "__complex__", "__index__", "__round__", "__iadd__",
            "__isub__", "__imul__", "__itruediv__"):
    setattr(RemoteObject, _op, _refuse(_op))


class RemoteModule(types.ModuleType):
    """A module of the port's packages: attributes come from the port process; the import
    system's own attributes (and submodules) stay here."""

    def __getattr__(self, name: str) -> object:
        if name in _LOCAL_MODULE_ATTRS or name == "_port_hid":
            raise AttributeError(name)
        return _request("getattr", t=_ModuleRef(self.__dict__["_port_hid"]), n=name)

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LOCAL_MODULE_ATTRS or name == "_port_hid" or isinstance(value, RemoteModule):
            self.__dict__[name] = value
        else:
            _request("setattr", t=_ModuleRef(self.__dict__["_port_hid"]), n=name, v=value)

    def __delattr__(self, name: str) -> None:
        if name in self.__dict__:
            del self.__dict__[name]
        else:
            _request("delattr", t=_ModuleRef(self.__dict__["_port_hid"]), n=name)

    def __dir__(self) -> list:
        names = _request("dir", t=_ModuleRef(self.__dict__["_port_hid"]))
        return sorted(set(self.__dict__) | {n for n in names if isinstance(n, str)}) if isinstance(names, list) else []


class _ModuleRef:
    """A module's handle in a request (modules are never released)."""

    __slots__ = ("hid",)

    def __init__(self, hid: int) -> None:
        self.hid = hid


class PortLoader:
    def __init__(self, info: dict) -> None:
        self.info = info

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> RemoteModule:
        module = RemoteModule(spec.name)
        module.__dict__["_port_hid"] = self.info["h"]
        if isinstance(self.info.get("file"), str):
            module.__dict__["__file__"] = CHANNEL[0].port_path(self.info["file"]) if CHANNEL[0] else self.info["file"]
        return module

    def exec_module(self, module: RemoteModule) -> None:
        pass


class PortFinder:
    """Serves every module of the port's packages from the port process. It never lets the
    import fall through to the trusted tree's copy: a failed import is the port's error."""

    def find_spec(self, name: str, path: object = None, target: object = None):
        channel = CHANNEL[0]
        if channel is None or name.partition(".")[0] not in channel.packages:
            return None
        info = _request("import", name=name)
        if not (isinstance(info, dict) and isinstance(info.get("h"), int) and not isinstance(info.get("h"), bool)):
            raise PortProcessError(f"the port process answered the import of {name} with no module")
        return importlib.machinery.ModuleSpec(name, PortLoader(info), is_package=bool(info.get("pkg")))

    def invalidate_caches(self) -> None:
        pass


# ----- the trusted codec ---------------------------------------------------------------------------

class PortIterator:
    """Items a port iterator gave, iterated here (it was run to its end in the port process)."""

    def __init__(self, items: list) -> None:
        self._items = iter(items)

    def __iter__(self) -> "PortIterator":
        return self

    def __next__(self) -> object:
        return next(self._items)


class PortOutput(collections.OrderedDict):
    """A library output object whose class this side cannot rebuild: keys and attributes."""

    def __getattr__(self, name: str) -> object:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to_tuple(self) -> tuple:
        return tuple(self.values())


_NAMEDTUPLES: dict[tuple[str, str, tuple[str, ...]], type] = {}


# The port's methods whose results are its own state, or iterators over its own structure
# (finite, and read at once in the port process).
STATE_METHODS = frozenset({"state_dict", "parameters", "named_parameters", "buffers", "named_buffers",
                           "get_parameter", "get_buffer"})
MODULE_ITERATORS = STATE_METHODS | {"modules", "named_modules", "children", "named_children"}


class TrustedCodec(wire.Codec):
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.context: tuple[str, str | None] = ("", None)  # (op, attribute or method name) of the request

    def tensor_received(self, t: torch.Tensor, node: dict) -> None:
        # The port may mark a tensor as its state only where that is what the test asked for:
        # an attribute, or a method returning parameters and buffers. It cannot mark outputs.
        op, name = self.context
        if node.get("st") == 1 and (op == "getattr" or name in STATE_METHODS):
            PORT_STATE.add(t)

    def encode_other(self, v: object, bufs: list, depth: int) -> object:
        if isinstance(v, RemoteObject):
            return {"$h": v._hid}
        if isinstance(v, _ModuleRef):
            return {"$h": v.hid}
        if isinstance(v, RemoteModule):
            return {"$h": v.__dict__["_port_hid"]}
        if isinstance(v, torch.Generator):  # its state goes along; the port's draws do not come back
            return {"$gen": [str(v.device), self.enc(v.get_state(), bufs, depth)]}
        cls = type(v)
        if isinstance(v, tuple) and hasattr(cls, "_fields"):
            fields = [[str(k), self.enc(x, bufs, depth)] for k, x in zip(cls._fields, v)]
            return {"$rec": [cls.__module__, cls.__qualname__, fields, "nt"]}
        if isinstance(v, collections.OrderedDict) and _output_class(cls):
            fields = [[str(k), self.enc(x, bufs, depth)] for k, x in v.items()]
            return {"$rec": [cls.__module__, cls.__qualname__, fields, "out"]}
        module = getattr(v, "__module__", None) if isinstance(v, (type, types.FunctionType,
                                                                  types.BuiltinFunctionType, types.ModuleType)) else None
        if isinstance(v, types.ModuleType):
            module = v.__name__
        top = module.partition(".")[0] if isinstance(module, str) else ""
        if top and top in self.channel.official:
            raise IsolationLimit(f"the official reference's {getattr(v, '__qualname__', module)} passed into port code",
                                 "the port runs without the official reference; pass data (tensors, numbers) only")
        qualname = getattr(v, "__qualname__", None) if not isinstance(v, types.ModuleType) else None
        if top and _is_library(module) and (qualname is None or "<" not in qualname):
            return {"$ref": [module, qualname]}
        if isinstance(v, types.FunctionType) and self._test_code(v):
            return self._function(v, bufs, depth)
        if callable(v):
            raise IsolationLimit(f"a callback from the test side ({getattr(v, '__qualname__', type(v).__qualname__)}) "
                                 "passed into port code", "port code cannot call back into the test process")
        raise IsolationLimit(f"a {cls.__module__}.{cls.__qualname__} object from the test side passed into port code",
                             "only data crosses: tensors, arrays, numbers, strings, containers of them")

    # -- callbacks: a function of the test's own files travels as its code, when it is pure --
    def _test_code(self, fn: types.FunctionType) -> bool:
        tree = self.channel.tree.rstrip("/") + "/"
        return bool(self.channel.tree) and fn.__code__.co_filename.startswith(tree)

    def _function(self, fn: types.FunctionType, bufs: list, depth: int) -> dict:
        """The function's code (marshal: both processes run one interpreter) with the globals it
        names, its closure and defaults, each of which must be immutable data, a module, a port
        object or another such function: then running it in the port process is running it
        here. Anything it could change on this side would change a copy there: a limit."""
        if depth > 8:
            raise IsolationLimit(f"callbacks from the test nested too deep ({fn.__qualname__})")
        names: set[str] = set()
        _names_of(fn.__code__, names)
        globs = [[name, self._callback_value(fn.__globals__[name], fn, f"the global {name}", bufs, depth)]
                 for name in sorted(names) if name in fn.__globals__]
        closure = []
        for i, cell in enumerate(fn.__closure__ or ()):
            try:
                value = cell.cell_contents
            except ValueError:
                raise IsolationLimit(f"a callback from the test ({fn.__qualname__}) with an unbound closure") from None
            name = fn.__code__.co_freevars[i]
            closure.append(self._callback_value(value, fn, f"the captured {name}", bufs, depth))
        defaults = [self._callback_value(d, fn, "a default", bufs, depth) for d in fn.__defaults__ or ()]
        kwdefaults = [[k, self._callback_value(d, fn, f"the default of {k}", bufs, depth)]
                      for k, d in (fn.__kwdefaults__ or {}).items()]
        bufs.append(memoryview(marshal.dumps(fn.__code__)))
        return {"$fn": [len(bufs) - 1, fn.__name__, globs, closure, defaults, kwdefaults]}

    def _callback_value(self, value: object, fn: types.FunctionType, what: str, bufs: list, depth: int) -> object:
        if isinstance(value, types.ModuleType):
            top = value.__name__.partition(".")[0]
            if top in self.channel.official or (top not in self.channel.packages and not _is_library(value.__name__)):
                raise IsolationLimit(f"a callback from the test ({fn.__qualname__}) uses {what}, the module "
                                     f"{value.__name__}, which the port process does not have")
            return {"$modref": value.__name__}
        if isinstance(value, (RemoteObject, RemoteModule)) or _immutable(value):
            return self.enc(value, bufs, depth + 1)
        if isinstance(value, types.FunctionType) and self._test_code(value):
            return self._function(value, bufs, depth + 1)
        if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
            return self.encode_other(value, bufs, depth + 1)
        raise IsolationLimit(f"a callback from the test ({fn.__qualname__}) uses {what}, a {type(value).__qualname__}: "
                             "in the port process it would work on a copy",
                             "pass a callback that uses only constants, modules and its arguments")

    def decode_other(self, tag: str, node: dict, bufs: list, depth: int) -> object:
        body = node[tag]
        channel = self.channel
        if tag == "$h":
            hid, kind, typename = _handle_body(body)
            proxy = channel.proxies.get(hid)
            if proxy is None or proxy._kind != kind:
                op, name = self.context
                proxy = RemoteObject(hid, kind, typename, name if op == "getattr" and depth <= 1 else None)
                channel.proxies[hid] = proxy
            else:
                object.__setattr__(proxy, "_n", proxy._n + 1)
            return proxy
        if tag == "$mod":
            name = str(body)
            if name.partition(".")[0] not in channel.packages:
                raise wire.WireError(f"a module reference outside the port's packages: {name[:80]}")
            return importlib.import_module(name)
        if tag == "$exc":
            module, qualname, bases, hid = _exc_body(body)
            channel.released.append([hid, 1])
            if module == "builtins" and qualname in _SAFE_BUILTINS:
                return getattr(builtins, qualname)
            return mirror_exception(module, qualname, bases)
        if tag == "$rec":
            return _record(self, body, bufs, depth)
        if tag == "$it":
            op, name = self.context
            if name not in MODULE_ITERATORS:
                raise IsolationLimit(f"a lazy iterator produced in the port process ({name or op})",
                                     "return a list from the port's code, or iterate a module's parameters, "
                                     "buffers or submodules")
            return PortIterator([self.dec(x, bufs, depth) for x in _as_list(body)])
        raise wire.WireError(f"unknown tag {tag[:20]!r}")


def _names_of(code: types.CodeType, names: set[str]) -> None:
    names.update(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _names_of(const, names)


def _immutable(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, torch.dtype, torch.device)):
        return True
    return isinstance(value, (tuple, frozenset)) and all(_immutable(v) for v in value)


def _handle_body(body: object) -> tuple[int, str, str]:
    if not (isinstance(body, list) and len(body) == 3 and isinstance(body[0], int) and body[1] in ("obj", "cls", "fn")
            and isinstance(body[2], str)):
        raise wire.WireError("bad handle")
    return body[0], body[1], body[2][:200]


def _exc_body(body: object) -> tuple[str, str, list, int]:
    if not (isinstance(body, list) and len(body) == 4 and isinstance(body[0], str) and isinstance(body[1], str)
            and isinstance(body[2], list) and isinstance(body[3], int)):
        raise wire.WireError("bad exception class")
    return body[0], body[1], body[2], body[3]


def _as_list(body: object) -> list:
    if not isinstance(body, list):
        raise wire.WireError("a list was expected")
    return body


def _is_library(module: str) -> bool:
    """A module both processes import from the same installed library (not the test's own
    files, not the port's packages, not the official reference)."""
    mod = sys.modules.get(module)
    top = module.partition(".")[0]
    if mod is None or top in ("tests", "conftest") or (CHANNEL[0] and top in CHANNEL[0].packages):
        return False
    path = getattr(mod, "__file__", None) or ""
    channel = CHANNEL[0]
    return not (channel and channel.tree and path.startswith(channel.tree + "/")) or "site-packages" in path


def _record_class(module: str, qualname: str) -> type | None:
    """This side's own class for a record the port sent: only a named tuple of torch or
    collections or an output class of transformers / diffusers, and only from a module this
    side has already imported (the port's word never makes this side import anything)."""
    if module.partition(".")[0] not in ("torch", "collections", *_TRUSTED_OUTPUT_LIBS):
        return None
    obj = sys.modules.get(module)
    for part in qualname.split("."):
        obj = getattr(obj, part, None) if obj is not None else None
    return obj if isinstance(obj, type) else None


def _output_class(cls: type) -> bool:
    return any(c.__name__ in ("ModelOutput", "BaseOutput") and c.__module__.partition(".")[0] in _TRUSTED_OUTPUT_LIBS
               for c in cls.__mro__)


def _record(codec: TrustedCodec, body: object, bufs: list, depth: int) -> object:
    if not (isinstance(body, list) and len(body) == 4 and isinstance(body[0], str) and isinstance(body[1], str)
            and isinstance(body[2], list) and body[3] in ("nt", "out")):
        raise wire.WireError("bad record")
    module, qualname, fields, kind = body
    pairs = []
    for item in fields:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
            raise wire.WireError("bad record field")
        pairs.append((item[0], codec.dec(item[1], bufs, depth)))
    cls = _record_class(module, qualname)
    if kind == "nt":
        names = tuple(k for k, _ in pairs)
        if isinstance(cls, type) and issubclass(cls, tuple) and getattr(cls, "_fields", None) == names:
            return cls(*(v for _, v in pairs))
        key = (module, qualname, names)
        if key not in _NAMEDTUPLES:
            if not all(n.isidentifier() and not n.startswith("_") for n in names):
                raise wire.WireError("bad named tuple fields")
            name = qualname.rpartition(".")[2]
            _NAMEDTUPLES[key] = collections.namedtuple(name if name.isidentifier() else "PortTuple", names)
        return _NAMEDTUPLES[key](*(v for _, v in pairs))
    if isinstance(cls, type) and _output_class(cls):
        return cls(**dict(pairs))
    return PortOutput(pairs)


# ----- attribute containers: copies that refuse to be changed -----------------------------------------

def _changes_a_copy(name: str):
    def method(self, *args: object, **kwargs: object) -> object:
        raise IsolationLimit(f"the test changes a copy of the port's attribute {self._port_attr!r} ({name})",
                             "set the attribute itself (obj.attr = new value): in the port process the object "
                             "keeps its own container")
    method.__name__ = name
    return method


def _frozen_type(base: type, mutators: tuple[str, ...]) -> type:
    namespace: dict = {name: _changes_a_copy(name) for name in mutators}
    namespace["_port_attr"] = ""
    namespace["__copy__"] = lambda self: base(self)
    namespace["__deepcopy__"] = lambda self, memo: base(__import__("copy").deepcopy(base(self), memo))
    namespace["__reduce_ex__"] = lambda self, protocol: (base, (base(self),))
    return type(f"PortAttribute{base.__name__.capitalize()}", (base,), namespace)


_LIST_MUTATORS = ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse", "__setitem__",
                  "__delitem__", "__iadd__", "__imul__")
_DICT_MUTATORS = ("__setitem__", "__delitem__", "pop", "popitem", "clear", "update", "setdefault", "__ior__")
_SET_MUTATORS = ("add", "discard", "remove", "pop", "clear", "update", "difference_update", "intersection_update",
                 "symmetric_difference_update", "__ior__", "__iand__", "__isub__", "__ixor__")
_FROZEN = {list: _frozen_type(list, _LIST_MUTATORS), dict: _frozen_type(dict, _DICT_MUTATORS),
           collections.OrderedDict: _frozen_type(collections.OrderedDict, _DICT_MUTATORS + ("move_to_end",)),
           set: _frozen_type(set, _SET_MUTATORS)}


def freeze(value: object, attr: str) -> object:
    """An attribute's value as this side holds it: a list, dict or set in it is a copy of the
    port's, so changing it here would change nothing there. Such copies refuse to change."""
    cls = _FROZEN.get(type(value))
    if cls is None:
        return value
    if isinstance(value, dict):
        frozen = cls((k, freeze(v, attr)) for k, v in value.items())
    else:
        frozen = cls(freeze(v, attr) for v in value)
    frozen._port_attr = attr
    return frozen


# ----- module state ----------------------------------------------------------------------------------

CHANNEL: list[Channel | None] = [None]


def _request(op: str, **args: object) -> object:
    __tracebackhide__ = True
    channel = CHANNEL[0]
    if channel is None:
        raise PortProcessError("the port channel is not open")
    return channel.request(op, **args)


def install(config: dict) -> Channel:
    """Open the channel (listening) and serve the port's packages from now on."""
    channel = Channel(config)
    CHANNEL[0] = channel
    sys.meta_path.insert(0, PortFinder())
    for name in list(sys.modules):
        if name.partition(".")[0] in channel.packages:
            del sys.modules[name]  # nothing of the port may stay imported from the trusted tree
    return channel


def wait_for_port(channel: Channel) -> None:
    """Connect now (tests run faster when the port's start overlaps collection)."""
    with channel.lock:
        channel._connect()


def now() -> float:
    return time.monotonic()
