"""The pytest plugin of the verdict's trusted process (loaded with `-p` before collection).

No code the agent wrote runs in this process: the test, its helpers and conftest files come
from the base commit, the port's packages are served by the port process (harness_port_client).
So this plugin watches nothing; it records and it measures:

- one JSON line per event in the records file (collection, each phase's report, each test's
  comparisons and isolation limits, the session's end), read by the harness afterwards;
- seeds: every seed the test sets (torch, torch.Generator, CUDA, random, numpy) is mixed with
  a per-verdict secret, and each test starts from a secret seed, so outputs stored for the
  test's inputs are worthless; whether the test drew random numbers is recorded;
- comparisons: torch.testing.assert_close, torch.allclose / equal, numpy.testing.assert_allclose
  and numpy.allclose called from the test's files are measured here (shapes, max abs / max rel
  difference, tolerances, pass or fail);
- an in-place edit of the port's parameters, and anything else the isolation cannot carry,
  is an IsolationLimit: recorded even when the test catches it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sys
import time

import pytest
import torch

import harness_port_client as port

CONFIG = json.loads(open(os.environ["HARNESS_VERDICT_CONFIG"], encoding="utf-8").read())
_SECRET = str(CONFIG["secret"])
_TREE = str(CONFIG.get("tree") or "").rstrip("/") + "/"
_OFFICIAL = (str(CONFIG.get("official") or "").rstrip("/") + "/") if CONFIG.get("official") else None
_RECORDS = open(CONFIG["records"], "a", encoding="utf-8", buffering=1)
_MAX_COMPARISONS = 500


def record(kind: str, **data: object) -> None:
    data["k"] = kind
    _RECORDS.write(json.dumps(data, default=str) + "\n")


# ----- seeds ---------------------------------------------------------------------------------------

def mix(seed: object, bits: int = 63) -> int:
    digest = hashlib.sha256(f"{_SECRET}:{seed!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << bits) - 1)


_torch_seed = torch.manual_seed
_cuda_seed, _cuda_seed_all = torch.cuda.manual_seed, torch.cuda.manual_seed_all
_random_seed = random.seed


def _manual_seed(seed: object) -> object:
    return _torch_seed(mix(int(seed)))


def _cuda_manual_seed(seed: object) -> None:
    _cuda_seed(mix(int(seed)))


def _cuda_manual_seed_all(seed: object) -> None:
    _cuda_seed_all(mix(int(seed)))


def _py_seed(a: object = None, version: int = 2) -> None:
    _random_seed(None if a is None else mix(a), version)


class _GeneratorMeta(type(torch._C.Generator)):
    def __instancecheck__(cls, obj: object) -> bool:
        return isinstance(obj, torch._C.Generator)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, torch._C.Generator)


class SeededGenerator(torch._C.Generator, metaclass=_GeneratorMeta):
    """torch.Generator whose seeds are mixed with the verdict's secret."""

    def manual_seed(self, seed: object) -> "SeededGenerator":
        RNG_USE[0] = True
        return super().manual_seed(mix(int(seed)))


RNG_USE = [False]
torch.manual_seed = torch.random.manual_seed = _manual_seed
torch.cuda.manual_seed, torch.cuda.manual_seed_all = _cuda_manual_seed, _cuda_manual_seed_all
torch.Generator = SeededGenerator
random.seed = _py_seed
try:
    import numpy

    _np_seed, _np_default_rng = numpy.random.seed, numpy.random.default_rng

    def _numpy_seed(seed: object = None) -> None:
        _np_seed(None if seed is None else mix(seed, 32))

    def _numpy_default_rng(seed: object = None) -> object:
        return _np_default_rng(mix(seed) if isinstance(seed, int) else seed)

    numpy.random.seed, numpy.random.default_rng = _numpy_seed, _numpy_default_rng
except ImportError:
    numpy = None


def _start_seeds(nodeid: str) -> tuple:
    _torch_seed(mix(("start", nodeid)))
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        _cuda_seed_all(mix(("start-cuda", nodeid)))
    _random_seed(mix(("start-random", nodeid)))
    if numpy is not None:
        _np_seed(mix(("start-numpy", nodeid), 32))
    RNG_USE[0] = False
    return _rng_snapshot()


def _rng_snapshot() -> tuple:
    return (torch.get_rng_state(), random.getstate(), numpy.random.get_state()[1].copy() if numpy is not None else None)


def _rng_used(before: tuple) -> bool:
    after = _rng_snapshot()
    if RNG_USE[0] or not torch.equal(before[0], after[0]) or before[1] != after[1]:
        return True
    return numpy is not None and not numpy.array_equal(before[2], after[2])


# ----- comparisons ---------------------------------------------------------------------------------

COMPARISONS: list[dict] = []


def _from_test(depth: int = 2) -> str | None:
    """`file:line` when the caller is the test's own code (a file of the tree, not the
    official reference), else None."""
    frame = sys._getframe(depth)
    name = frame.f_code.co_filename
    if name.startswith(_TREE) and not (_OFFICIAL and name.startswith(_OFFICIAL)) and "site-packages" not in name:
        return f"{name[len(_TREE):]}:{frame.f_lineno}"
    return None


def figures(actual: object, expected: object) -> dict:
    """Shapes and the largest absolute and relative differences of two tensors (or arrays),
    measured here in float64; a NaN on one side only counts as an infinite difference."""
    try:
        a, e = torch.as_tensor(actual), torch.as_tensor(expected)
    except Exception:
        return {"kind": f"{type(actual).__name__} vs {type(expected).__name__}"}
    out: dict = {"shape": list(a.shape), "dtype": str(a.dtype).replace("torch.", "")}
    if a.shape != e.shape:
        out["expected_shape"] = list(e.shape)
        out["shape_mismatch"] = True
        return out
    if a.numel() == 0:
        return {**out, "max_abs": 0.0, "max_rel": 0.0}
    with torch.no_grad():
        wide = torch.complex128 if a.is_complex() or e.is_complex() else torch.float64
        da, de = a.detach().to("cpu", wide), e.detach().to("cpu", wide)
        both_nan = torch.isnan(da) & torch.isnan(de)
        diff = torch.nan_to_num(torch.where(both_nan, 0.0, (da - de).abs().real.double()), nan=float("inf"))
        scale = de.abs().real.double()
        rel = torch.where(diff == 0, 0.0, diff / scale)
        worst = int(diff.reshape(-1).argmax())
        out.update(max_abs=float(diff.max()), max_rel=float(torch.nan_to_num(rel, nan=float("inf")).max()),
                   nan=bool(torch.isnan(da).any() or torch.isnan(de).any()),
                   worst_index=worst, worst_actual=_num(da.reshape(-1)[worst]),
                   worst_expected=_num(de.reshape(-1)[worst]))
    return out


def _num(x: torch.Tensor) -> object:
    value = x.item()
    return str(value) if isinstance(value, complex) else value


def _label(msg: object) -> str | None:
    if isinstance(msg, str):
        return msg[:120]
    if callable(msg):
        try:
            return str(msg("")).strip().strip(":").strip()[:120] or None
        except Exception:
            return None
    return None


def _pairs(actual: object, expected: object) -> list[tuple[str, object, object]]:
    from torch.utils._pytree import tree_flatten

    a_leaves, a_spec = tree_flatten(actual)
    e_leaves, e_spec = tree_flatten(expected)
    if len(a_leaves) != len(e_leaves):
        return [("", actual, expected)]
    if len(a_leaves) == 1:
        return [("", a_leaves[0], e_leaves[0])]
    return [(f"[{i}]", x, y) for i, (x, y) in enumerate(zip(a_leaves, e_leaves))]


def _keep(entry: dict) -> None:
    if len(COMPARISONS) < _MAX_COMPARISONS:
        COMPARISONS.append(entry)


def _asserting(name: str, original):
    """A wrapper of an asserting comparison: measured, then the original decides."""

    def wrapper(actual, expected, *args, **kwargs):
        __tracebackhide__ = True  # pytest shows the test's call, not this wrapper
        for value in (actual, expected):
            if isinstance(value, port.RemoteObject):
                raise port.PortValueError(f"{name} of a port object ({value._type}): a port object is a handle "
                                          "to an object in the port process, not a value; compare the tensors it returns")
        where = _from_test()
        if where is None:
            return original(actual, expected, *args, **kwargs)
        entry: dict = {"fn": name, "where": where, "label": _label(kwargs.get("msg") or kwargs.get("err_msg")),
                       "atol": kwargs.get("atol"), "rtol": kwargs.get("rtol"), "asserting": True}
        try:
            original(actual, expected, *args, **kwargs)
            entry["passed"] = True
        except BaseException as exc:
            entry["passed"] = False
            entry["error"] = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            raise
        finally:
            for suffix, x, y in _pairs(actual, expected):
                _keep({**entry, "label": (entry["label"] or "") + suffix or None, **figures(x, y)})
        return None

    wrapper.__name__ = getattr(original, "__name__", name)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    wrapper.__wrapped__ = original
    return wrapper


def _boolean(name: str, original):
    """A wrapper of a comparison that returns a bool: measured when the test calls it."""

    def wrapper(a, b, *args, **kwargs):
        __tracebackhide__ = True
        result = original(a, b, *args, **kwargs)
        where = _from_test()
        if where is not None:
            entry = {"fn": name, "where": where, "passed": bool(result), "asserting": False,
                     "atol": kwargs.get("atol"), "rtol": kwargs.get("rtol")}
            _keep({**entry, **figures(a, b)})
        return result

    wrapper.__name__ = getattr(original, "__name__", name)
    wrapper.__doc__ = getattr(original, "__doc__", None)
    wrapper.__wrapped__ = original
    return wrapper


torch.testing.assert_close = _asserting("assert_close", torch.testing.assert_close)
torch.allclose = _boolean("allclose", torch.allclose)
torch.equal = _boolean("equal", torch.equal)
torch.Tensor.allclose = _boolean("Tensor.allclose", torch.Tensor.allclose)
torch.Tensor.equal = _boolean("Tensor.equal", torch.Tensor.equal)
if numpy is not None:
    import numpy.testing

    numpy.testing.assert_allclose = _asserting("numpy.testing.assert_allclose", numpy.testing.assert_allclose)
    numpy.allclose = _boolean("numpy.allclose", numpy.allclose)


# ----- the port --------------------------------------------------------------------------------------

CHANNEL = port.install(CONFIG["port"])
_compile = torch.compile


def _compile_here(model=None, *args, **kwargs):
    if isinstance(model, port.RemoteObject):
        raise port.IsolationLimit("torch.compile of a port object", "compile inside the port's own code, or not at all")
    return _compile(model, *args, **kwargs) if model is not None else _compile(*args, **kwargs)


torch.compile = _compile_here


# ----- pytest hooks ----------------------------------------------------------------------------------

def pytest_collectreport(report):
    if report.failed:
        record("collect_error", id=report.nodeid, text=str(report.longreprtext)[-4000:])


def pytest_collection_finish(session):
    record("collected", ids=[item.nodeid for item in session.items])


def pytest_deselected(items):
    record("deselected", ids=[item.nodeid for item in items])


_STATE: dict = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    port.CURRENT_TEST[0] = item.nodeid
    del COMPARISONS[:]
    limits_before = len(port.LIMITS)
    calls_before = CHANNEL.calls
    rng_before = _start_seeds(item.nodeid)
    started = time.monotonic()
    guard = port.PortStateGuard()
    guard.__enter__()
    try:
        yield
    finally:
        try:
            guard.__exit__(None, None, None)
        except Exception:  # a test that left its own mode pushed: the stack is the test's problem
            pass
        record("test", id=item.nodeid, seconds=round(time.monotonic() - started, 3),
               comparisons=list(COMPARISONS), limits=port.LIMITS[limits_before:],
               rng_used=_rng_used(rng_before), port_calls=CHANNEL.calls - calls_before)
        port.CURRENT_TEST[0] = ""


def pytest_runtest_logreport(report):
    entry = {"id": report.nodeid, "when": report.when, "outcome": report.outcome,
             "wasxfail": hasattr(report, "wasxfail")}
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        entry["skip"] = str(report.longrepr[2])[:1000]
    elif report.failed:
        entry["text"] = str(report.longreprtext)[-4000:]
    record("report", **entry)


def pytest_sessionfinish(session, exitstatus):
    record("finish", exitstatus=int(exitstatus), port=CHANNEL.broken if CHANNEL.broken != "closed" else None,
           port_calls=CHANNEL.calls, limits=len(port.LIMITS))
    CHANNEL.bye()
    _RECORDS.flush()
