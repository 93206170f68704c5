"""Frames and values between the verdict's trusted process and its port process.

A frame is a JSON header plus raw binary buffers (tensor and array data). A value is a JSON
tree in which every object is one tag (`{"$t": [...]}` a tuple, `{"$T": 0, ...}` a tensor
whose bytes are buffer 0, ...). Nothing is ever unpickled: a decoder builds only the plain
values below and asks its side (`Codec.decode_other`) about the rest (handles, records), so
bytes from the port can never make the trusted process run code.

Standalone: the standard library and torch (numpy when importable).
"""

from __future__ import annotations

import collections
import ctypes
import json
import math
import pathlib
import socket
import struct

import torch

try:
    import numpy
except ImportError:  # numpy arrays then simply cannot cross
    numpy = None

MAX_HEADER_BYTES = 256 << 20
MAX_BUFFERS = 1 << 20
MAX_DEPTH = 64
_PREFIX = struct.Struct("!II")

_DTYPE_NAMES = ("float64", "float32", "float16", "bfloat16", "complex64", "complex128", "uint8", "int8",
                "int16", "int32", "int64", "bool", "uint16", "uint32", "uint64", "float8_e4m3fn",
                "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "complex32")
DTYPES = {name: getattr(torch, name) for name in _DTYPE_NAMES if isinstance(getattr(torch, name, None), torch.dtype)}
_DTYPE_OF = {dtype: name for name, dtype in DTYPES.items()}
_PATH_TYPES = {"path": pathlib.PosixPath, "pure": pathlib.PurePosixPath}
_PATHS = {cls: name for name, cls in _PATH_TYPES.items()}


class WireError(Exception):
    """A frame or value that does not follow the format (or exceeds its limits)."""


class WireClosed(WireError):
    """The other side closed the channel."""


# ----- frames ----------------------------------------------------------------------------------

def send_frame(sock: socket.socket, header: dict, bufs: list) -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    views = [b if isinstance(b, memoryview) else memoryview(b) for b in bufs]
    sizes = struct.pack(f"!{len(views)}Q", *(v.nbytes for v in views))
    sock.sendall(_PREFIX.pack(len(head), len(views)) + sizes + head)
    for view in views:
        if view.nbytes:
            sock.sendall(view.cast("B") if view.format != "B" or view.ndim != 1 else view)


_CHUNK = 1 << 24


def _recv_exact(sock: socket.socket, size: int) -> bytearray:
    """`size` bytes; memory grows with what really arrives, never with what a peer announces."""
    buf = bytearray(min(size, _CHUNK))
    got = 0
    while got < size:
        if got == len(buf):
            buf.extend(bytes(min(size - got, len(buf))))
        n = sock.recv_into(memoryview(buf)[got:], min(len(buf) - got, _CHUNK))
        if n == 0:
            raise WireClosed("the other side closed the channel")
        got += n
    return buf


def recv_frame(sock: socket.socket, max_bytes: int) -> tuple[dict, list[bytearray]]:
    """One frame; refuses one whose buffers add up to more than `max_bytes`."""
    n_head, n_bufs = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    if n_head > MAX_HEADER_BYTES or n_bufs > MAX_BUFFERS:
        raise WireError(f"a frame of {n_head} header bytes and {n_bufs} buffers is over the limits")
    sizes = struct.unpack(f"!{n_bufs}Q", _recv_exact(sock, 8 * n_bufs)) if n_bufs else ()
    if sum(sizes) > max_bytes:
        raise WireError(f"a message of {sum(sizes)} bytes is over the verdict's limit of {max_bytes} bytes")
    try:
        header = json.loads(_recv_exact(sock, n_head))
    except (ValueError, RecursionError) as exc:
        raise WireError(f"unreadable frame header: {exc}") from None
    if not isinstance(header, dict):
        raise WireError("a frame header must be a JSON object")
    return header, [_recv_exact(sock, size) for size in sizes]


# ----- tensors and arrays ----------------------------------------------------------------------

def tensor_bytes(t: torch.Tensor) -> memoryview:
    """The raw bytes of a CPU contiguous tensor, without a copy when numpy is there."""
    flat = t.reshape(-1).view(torch.uint8)
    if numpy is not None:
        return memoryview(flat.numpy())
    return memoryview(ctypes.string_at(flat.data_ptr(), flat.numel()))


def plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """The data of `t` as a CPU, contiguous, plain tensor (no subclass, no lazy conj/neg bits)."""
    if t.layout is not torch.strided or t.is_quantized or t.device.type == "meta":
        raise WireError(f"a {t.layout} {'quantized ' if t.is_quantized else ''}tensor on {t.device} cannot "
                        "cross the boundary by value")
    if t.dtype not in _DTYPE_OF:
        raise WireError(f"a tensor of dtype {t.dtype} cannot cross the boundary")
    data = torch.Tensor._make_subclass(torch.Tensor, t.detach()) if type(t) is not torch.Tensor else t.detach()
    data = data.resolve_conj().resolve_neg() if data.is_complex() else data
    return data.to("cpu").contiguous()


def _shape(node: object) -> list[int]:
    if not isinstance(node, list) or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                                             for n in node) or len(node) > 64:
        raise WireError(f"bad shape {str(node)[:80]}")
    return node


def _tensor_from(node: dict, bufs: list[bytearray]) -> torch.Tensor:
    dtype = DTYPES.get(node.get("dt"))  # type: ignore[arg-type]
    if dtype is None:
        raise WireError(f"unknown dtype {str(node.get('dt'))[:40]}")
    shape = _shape(node.get("sh"))
    buf = _buffer(node.get("$T"), bufs)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(buf) != math.prod(shape) * itemsize:
        raise WireError("a tensor's data does not match its shape and dtype")
    if not buf:
        t = torch.empty(shape, dtype=dtype)
    else:
        t = torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(shape)
    device = node.get("dev")
    if isinstance(device, str) and device != "cpu":
        t = _to_device(t, device)
    return t


def _to_device(t: torch.Tensor, device: str) -> torch.Tensor:
    """On the device it came from when this side has it, else on the CPU."""
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise WireError(f"bad device {device[:40]!r}") from None
    if dev.type == "cuda" and torch.cuda.is_available() and (dev.index or 0) < torch.cuda.device_count():
        return t.to(dev)
    return t


def _buffer(index: object, bufs: list[bytearray]) -> bytearray:
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(bufs):
        raise WireError("a value names a buffer the frame does not hold")
    return bufs[index]


def _array_from(node: dict, bufs: list[bytearray]) -> object:
    if numpy is None:
        raise WireError("numpy is not importable on this side")
    try:
        dtype = numpy.dtype(str(node.get("dt")))
    except TypeError:
        raise WireError("bad numpy dtype") from None
    if dtype.kind not in "biufc" or dtype.hasobject or dtype.fields is not None:
        raise WireError(f"numpy dtype {dtype} cannot cross the boundary")
    shape = _shape(node.get("sh"))
    buf = _buffer(node.get("$N"), bufs)
    if len(buf) != math.prod(shape) * dtype.itemsize:
        raise WireError("an array's data does not match its shape and dtype")
    arr = numpy.frombuffer(buf, dtype=dtype).reshape(shape)
    return arr[()] if node.get("scalar") is True and not shape else arr


# ----- values ----------------------------------------------------------------------------------

class Codec:
    """Plain values both ways; a side overrides `encode_other` / `decode_other` for the rest
    (handles, records, generators) and the tensor hooks."""

    # Whether a tensor that required grad on the other side requires grad here. The port keeps
    # it (it gets the test's tensors); the trusted side does not: a result arrives without its
    # graph, and a leaf that requires grad would refuse the in-place work the result allowed.
    keep_grad = False

    def encode(self, value: object) -> tuple[object, list]:
        bufs: list = []
        return self._enc(value, bufs, 0), bufs

    def decode(self, tree: object, bufs: list[bytearray]) -> object:
        try:
            return self._dec(tree, bufs, 0)
        except (TypeError, ValueError, OverflowError, RecursionError) as exc:
            raise WireError(f"unreadable value: {exc}") from None

    # -- encoding --
    def _enc(self, v: object, bufs: list, depth: int) -> object:
        if depth > MAX_DEPTH:
            raise WireError(f"a value nested deeper than {MAX_DEPTH} levels")
        t = type(v)
        if v is None or t is bool or t is int or t is str:
            return v
        if t is float:
            return v if math.isfinite(v) else {"$f": repr(v)}
        d = depth + 1
        if t is list:
            return [self._enc(x, bufs, d) for x in v]
        if t is tuple:
            return {"$t": [self._enc(x, bufs, d) for x in v]}
        if t is dict or t is collections.OrderedDict:
            tag = "$d" if t is dict else "$od"
            return {tag: [[self._enc(k, bufs, d), self._enc(x, bufs, d)] for k, x in v.items()]}
        if t is set or t is frozenset:
            return {"$s" if t is set else "$fs": [self._enc(x, bufs, d) for x in v]}
        if t is complex:
            return {"$c": [self._enc(v.real, bufs, d), self._enc(v.imag, bufs, d)]}
        if t is bytes or t is bytearray:
            bufs.append(memoryview(bytes(v)))
            return {"$b" if t is bytes else "$ba": len(bufs) - 1}
        if isinstance(v, torch.Tensor):
            return self.encode_tensor(v, bufs)
        if t is torch.dtype:
            if v not in _DTYPE_OF:
                raise WireError(f"dtype {v} cannot cross the boundary")
            return {"$dt": _DTYPE_OF[v]}
        if t is torch.device:
            return {"$dev": str(v)}
        if t is torch.Size:
            return {"$sz": list(v)}
        if t is slice:
            return {"$sl": [self._enc(x, bufs, d) for x in (v.start, v.stop, v.step)]}
        if v is Ellipsis:
            return {"$el": 0}
        if t is range:
            return {"$r": [v.start, v.stop, v.step]}
        if t in _PATHS:
            return {"$p": [_PATHS[t], str(v)]}
        if numpy is not None and isinstance(v, (numpy.ndarray, numpy.generic)) and t.__module__ == "numpy":
            arr = numpy.ascontiguousarray(v)
            if arr.dtype.kind not in "biufc":
                return self.encode_other(v, bufs, d)
            bufs.append(memoryview(arr.reshape(-1).view(numpy.uint8)))
            node = {"$N": len(bufs) - 1, "dt": arr.dtype.str, "sh": list(arr.shape)}
            if isinstance(v, numpy.generic):
                node["scalar"] = True
            return node
        return self.encode_other(v, bufs, d)

    def encode_tensor(self, t: torch.Tensor, bufs: list) -> dict:
        data = plain_tensor(t)
        bufs.append(tensor_bytes(data))
        node = {"$T": len(bufs) - 1, "dt": _DTYPE_OF[data.dtype], "sh": list(data.shape), "dev": str(t.device),
                "rg": bool(t.requires_grad)}
        node.update(self.tensor_extra(t))
        return node

    def tensor_extra(self, t: torch.Tensor) -> dict:
        return {}

    def encode_other(self, v: object, bufs: list, depth: int) -> object:
        raise WireError(f"a {type(v).__qualname__} cannot cross the boundary")

    # -- decoding --
    def _dec(self, node: object, bufs: list[bytearray], depth: int) -> object:
        if depth > MAX_DEPTH:
            raise WireError(f"a value nested deeper than {MAX_DEPTH} levels")
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        d = depth + 1
        if isinstance(node, list):
            return [self._dec(x, bufs, d) for x in node]
        if not isinstance(node, dict) or not node:
            raise WireError("an untagged object in a value")
        tag = next(iter(node))
        body = node[tag]
        if tag == "$t":
            return tuple(self._dec(x, bufs, d) for x in _list(body))
        if tag in ("$d", "$od"):
            pairs = [(self._dec(k, bufs, d), self._dec(x, bufs, d)) for k, x in (_pair(p) for p in _list(body))]
            return dict(pairs) if tag == "$d" else collections.OrderedDict(pairs)
        if tag in ("$s", "$fs"):
            items = [self._dec(x, bufs, d) for x in _list(body)]
            return set(items) if tag == "$s" else frozenset(items)
        if tag == "$f":
            if body not in ("nan", "inf", "-inf"):
                raise WireError("bad float")
            return float(body)
        if tag == "$c":
            re_, im = (_number(self._dec(x, bufs, d)) for x in _pair(body))
            return complex(re_, im)
        if tag in ("$b", "$ba"):
            data = _buffer(body, bufs)
            return bytes(data) if tag == "$b" else data
        if tag == "$T":
            t = _tensor_from(node, bufs)
            if self.keep_grad and node.get("rg") is True and (t.is_floating_point() or t.is_complex()):
                t.requires_grad_(True)
            self.tensor_received(t, node)
            return t
        if tag == "$N":
            return _array_from(node, bufs)
        if tag == "$dt":
            if body not in DTYPES:
                raise WireError("unknown dtype")
            return DTYPES[body]
        if tag == "$dev":
            try:
                return torch.device(str(body))
            except (RuntimeError, ValueError):
                raise WireError("bad device") from None
        if tag == "$sz":
            return torch.Size(_shape(body))
        if tag == "$sl":
            start, stop, step = (self._dec(x, bufs, d) for x in _triple(body))
            return slice(start, stop, step)
        if tag == "$el":
            return Ellipsis
        if tag == "$r":
            a, b, c = _triple(body)
            return range(*(_int(x) for x in (a, b, c)))
        if tag == "$p":
            kind, text = _pair(body)
            if kind not in _PATH_TYPES or not isinstance(text, str):
                raise WireError("bad path")
            return _PATH_TYPES[kind](text)
        return self.decode_other(tag, node, bufs, d)

    def tensor_received(self, t: torch.Tensor, node: dict) -> None:
        pass

    def decode_other(self, tag: str, node: dict, bufs: list[bytearray], depth: int) -> object:
        raise WireError(f"unknown tag {tag[:20]!r}")

    def dec(self, node: object, bufs: list[bytearray], depth: int) -> object:
        """For the side's hooks: decode a nested node."""
        return self._dec(node, bufs, depth)

    def enc(self, value: object, bufs: list, depth: int) -> object:
        """For the side's hooks: encode a nested value."""
        return self._enc(value, bufs, depth)


def _list(body: object) -> list:
    if not isinstance(body, list):
        raise WireError("a tag whose body should be a list")
    return body


def _pair(body: object) -> list:
    if not isinstance(body, list) or len(body) != 2:
        raise WireError("a tag whose body should be a pair")
    return body


def _triple(body: object) -> list:
    if not isinstance(body, list) or len(body) != 3:
        raise WireError("a tag whose body should hold three items")
    return body


def _int(x: object) -> int:
    if not isinstance(x, int) or isinstance(x, bool):
        raise WireError("an integer was expected")
    return x


def _number(x: object) -> float:
    if not isinstance(x, (int, float)) or isinstance(x, bool):
        raise WireError("a number was expected")
    return float(x)
