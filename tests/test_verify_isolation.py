"""What the verdict's isolation carries between the test and the port, and where it fails closed.

A small repository: a port (`fastvideo/models/vaes/mini.py`, written by "the agent"), an
official reference outside it, and parity tests at the base commit that use the port the ways
real parity tests do. Each case runs the real verdict: the test in the trusted process, the
port in its own process, a socket between them.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from harness.sandbox.executors import make_executor
from harness.sandbox.workspace import Workspace
from harness.verify.verdict import run_verdict

pytestmark = pytest.mark.slow

MODEL = "fastvideo/models/vaes/mini.py"
TEST = "tests/local_tests/vaes/test_mini_parity.py"

OFFICIAL = '''
import torch
from torch import nn


class OfficialMini(nn.Module):
    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x):
        return self.conv(x) * 0.5 + self.shift[:, None]

    def encode(self, x):
        out = self.forward(x)
        return {"mean": out, "logvar": out * 0}
'''

PORT = '''
import collections
import os

import torch
from torch import nn

Pair = collections.namedtuple("Pair", ["out", "total"])
SCALE_OVERRIDE = None


class MiniError(LookupError):
    pass


class Posterior:
    def __init__(self, mean):
        self.mean = mean
        self.logvar = mean * 0


class MiniVAE(nn.Module):
    scaling = 0.5

    def __init__(self, channels=4):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.register_buffer("shift", torch.zeros(channels))
        self.sizes = [channels, channels]

    def forward(self, x):
        return self.conv(x) * self.scaling + self.shift[:, None]

    def encode(self, x):
        return Posterior(self.forward(x))

    def pair(self, x):
        return Pair(self.forward(x), float(x.sum()))

    def blocks(self):
        return nn.ModuleList([nn.Identity(), nn.Identity()])

    def named(self):
        return self.named_parameters()

    def grad_mode(self):
        return torch.is_grad_enabled()

    def inference(self):
        return torch.is_inference_mode_enabled()

    def default_dtype(self):
        return torch.get_default_dtype()

    def deterministic(self):
        return [torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()]

    def env(self, name):
        return os.environ.get(name)

    def noise(self, shape, generator=None):
        return torch.randn(shape, generator=generator)

    def read_text(self, path):
        return path.read_text()

    def fail(self):
        raise MiniError("no such thing")

    def take(self, value):
        return value

    def stream(self):
        yield from range(3)


def current_scale_override():
    return SCALE_OVERRIDE


def device_of_choice():
    return torch.device("cuda")


def pick_device():
    return device_of_choice()
'''

HEADER = '''
import copy
import os
import sys

import pytest
import torch
from torch.testing import assert_close

sys.path.insert(0, os.environ["OFFICIAL_REF_DIR"])
from mini_official import OfficialMini  # noqa: E402

from fastvideo.models.vaes.mini import MiniError, MiniVAE  # noqa: E402


def _pair():
    torch.manual_seed(0)
    ref = OfficialMini(4).eval()
    port = MiniVAE(4).eval()
    missing, unexpected = port.load_state_dict(ref.state_dict(), strict=True)
    assert list(missing) == [] and list(unexpected) == []
    return ref, port
'''

SUPPORTED = HEADER + '''

def test_forward_matches():
    ref, port = _pair()
    x = torch.randn(2, 4, 8)
    with torch.no_grad():
        assert_close(port(x), ref(x))


def test_attributes_methods_and_containers():
    ref, port = _pair()
    x = torch.randn(1, 4, 5)
    assert port.scaling == 0.5
    assert set(port.state_dict()) == {"conv.weight", "conv.bias", "shift"}
    assert len(port.blocks()) == 2 and len(list(port.blocks())) == 2
    assert sorted(name for name, _ in port.named_parameters()) == ["conv.bias", "conv.weight"]
    out = port.pair(torch.ones(1, 4, 3))
    assert out.total == 12.0 and out.out.shape == (1, 4, 3)
    assert isinstance(port, MiniVAE) and not isinstance(ref, MiniVAE)
    assert port.__class__.__name__ == "MiniVAE" and port.conv.__class__.__name__ == "Conv1d"
    with torch.no_grad():
        assert_close(port.encode(x).mean, ref.encode(x)["mean"])
    assert port.conv.weight.shape == (4, 4, 3)
    assert port.take({"a": (1, 2.5, None), "b": [torch.ones(2)]})["a"] == (1, 2.5, None)


def test_ambient_state_reaches_the_port():
    _, port = _pair()
    assert port.grad_mode() is True
    with torch.no_grad():
        assert port.grad_mode() is False
    with torch.inference_mode():
        assert port.inference() is True
    torch.set_default_dtype(torch.float64)
    try:
        assert port.default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    assert port.default_dtype() == torch.float32
    assert port.deterministic() == [False, False]
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        assert port.deterministic() == [True, True]
    finally:
        torch.use_deterministic_algorithms(False)
    assert port.deterministic() == [False, False]
    os.environ["MINI_FLAG"] = "on"
    assert port.env("MINI_FLAG") == "on"
    del os.environ["MINI_FLAG"]
    assert port.env("MINI_FLAG") is None


def test_port_exceptions_keep_their_class():
    _, port = _pair()
    with pytest.raises(MiniError):
        port.fail()
    try:
        port.fail()
    except LookupError as exc:
        assert "no such thing" in str(exc)
    with pytest.raises(AttributeError):
        port.no_such_attribute


def test_generators_and_paths_cross(tmp_path):
    _, port = _pair()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert_close(port.noise((2, 3), generator=g1), torch.randn((2, 3), generator=g2))
    (tmp_path / "w.txt").write_text("7")
    assert port.read_text(tmp_path / "w.txt") == "7"


def test_monkeypatch_on_a_port_module(monkeypatch):
    import fastvideo.models.vaes.mini as mini

    monkeypatch.setattr(mini, "SCALE_OVERRIDE", 2.0)
    assert mini.current_scale_override() == 2.0


def test_pure_callbacks_run_in_the_port(monkeypatch):
    import fastvideo.models.vaes.mini as mini

    _, port = _pair()
    monkeypatch.setattr("fastvideo.models.vaes.mini.device_of_choice", lambda: torch.device("cpu"))
    assert mini.pick_device() == torch.device("cpu")
    factor = 3
    assert port.take(lambda x, k=2: x * k * factor)(2) == 12
    port.apply(lambda module: None)
    assert port.sizes == [4, 4] and list(port.sizes) == [4, 4]
'''

LIMITS = {
    "in_place_parameter": "with torch.no_grad():\n        port.conv.weight.copy_(ref.conv.weight)",
    "in_place_state_dict": "port.state_dict()['conv.weight'].zero_()",
    "data_setter": "port.conv.weight.data = ref.conv.weight.data",
    "init_on_a_parameter": "torch.nn.init.zeros_(port.conv.bias)",
    "callback_with_state": "seen = []\n    port.apply(lambda module: seen.append(module))",
    "attribute_copy_changed": "port.sizes.append(5)",
    "official_object": "port.take(ref)",
    "subclass": "class Mine(MiniVAE):\n        pass",
    "deepcopy": "copy.deepcopy(port)",
    "torch_compile": "torch.compile(port)",
    "lazy_iterator": "list(port.stream())",
}
# A handle used as a value is the test's error, as a wrong type would be in one process.
NOT_VALUES = {
    "equality": "assert port == port",
    "truth": "assert port",
    "as_tensor": "torch.add(port, 1)",
    "compared": "assert_close(port, ref(torch.ones(1, 4, 2)))",
}


def limit_test(body: str) -> str:
    return HEADER + f"\n\ndef test_pattern():\n    ref, port = _pair()\n    {body}\n"


def _repo(tmp_path: Path, test_source: str) -> tuple[Path, Path]:
    repo, official = tmp_path / "repo", tmp_path / "official"
    files = {"fastvideo/__init__.py": "", "fastvideo/models/__init__.py": "", "fastvideo/models/vaes/__init__.py": "",
             "fastvideo/configs/__init__.py": "", "fastvideo/configs/models/__init__.py": "",
             "fastvideo/configs/models/vaes/__init__.py": "", TEST: test_source,
             "tests/local_tests/mini/README.md": "# mini\n"}
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    (official / "mini_official").mkdir(parents=True)
    (official / "mini_official" / "__init__.py").write_text(OFFICIAL)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "base"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    return repo, official


PACKET = {"mode": "parity-debug", "model_family": "mini", "component_type": "vae",
          "fastvideo_target_files": [MODEL], "local_tests_readme": "tests/local_tests/mini/README.md",
          "parity_test": TEST}


def verdict(tmp_path: Path, test_source: str, port_source: str = PORT, kind: str = "local"):
    repo, official = _repo(tmp_path, test_source)
    ws = Workspace.create(repo, f"iso-{uuid.uuid4().hex[:6]}", official_ref_dir=official, root=tmp_path / "home")
    (ws.path / MODEL).write_text(port_source)
    ws.checkpoint("the agent's port")
    return run_verdict(ws, PACKET, lambda tree: make_executor(kind, tree, run_id=tree.run_id), tmp_path / "logs",
                       commit=ws.head())


def test_the_patterns_real_tests_use_are_carried(tmp_path):
    v = verdict(tmp_path, SUPPORTED)
    assert v.run.status == "non_skip_pass", (v.run.summary_line(), v.run.failures, v.problems)
    assert v.run.passed == 7
    assert any("secret" in note for note in v.run.evidence)
    assert v.run.comparisons and all(c["passed"] for c in v.run.comparisons)


def test_a_seeded_bug_is_red_with_the_measured_figures(tmp_path):
    v = verdict(tmp_path, limit_test("x = torch.randn(2, 4, 8)\n    assert_close(port(x), ref(x))"),
                PORT.replace("* self.scaling +", "* self.scaling * 1.01 +"))
    assert v.run.status == "debug_red", v.run.summary_line()
    failed = [c for c in v.run.comparisons if c["passed"] is False]
    assert failed and failed[0]["max_abs"] > 0 and "FAILED" in v.run.comparison_lines[0]


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_what_isolation_cannot_carry_fails_closed(tmp_path, name):
    v = verdict(tmp_path, limit_test(LIMITS[name]))
    assert v.run.status == "blocked", (name, v.run.summary_line())
    assert "cannot isolate" in v.run.blocker and "test_mini_parity.py" in v.run.blocker


@pytest.mark.parametrize("name", sorted(NOT_VALUES))
def test_a_handle_used_as_a_value_fails_the_test(tmp_path, name):
    v = verdict(tmp_path, limit_test(NOT_VALUES[name]))
    assert v.run.status == "debug_red", (name, v.run.summary_line())
    assert "not a value" in (v.run.first_failure or ""), v.run.first_failure


def test_a_caught_limit_still_blocks(tmp_path):
    v = verdict(tmp_path, limit_test("try:\n        copy.deepcopy(port)\n    except Exception:\n        pass"))
    assert v.run.status == "blocked", v.run.summary_line()


def test_a_port_cannot_mark_its_outputs_as_its_state(tmp_path):
    """An output marked as the port's state would turn the test's in-place work on it into a
    limit: the trusted side takes the mark only for attributes and parameter methods."""
    liar = PORT.replace("    def forward(self, x):\n        return self.conv(x) * self.scaling + self.shift[:, None]",
                        "    def forward(self, x):\n        return self.shift.expand(x.shape[0], -1).clone()[:, :, None] * 0 "
                        "+ self.conv(x) * self.scaling + self.shift[:, None]")
    test = limit_test("out = port(torch.ones(1, 4, 2))\n    out.add_(1)\n    assert out.shape == (1, 4, 2)")
    v = verdict(tmp_path, test, liar)
    assert v.run.status == "non_skip_pass", v.run.summary_line()


def test_the_port_process_has_no_official_reference_and_no_pytest(tmp_path):
    probe = PORT + '''

def probe():
    import importlib.util
    return [importlib.util.find_spec(name) is None for name in ("mini_official", "pytest", "_pytest")]
'''
    test = limit_test("assert __import__('fastvideo.models.vaes.mini', fromlist=['probe']).probe() "
                      "== [True, True, True]")
    v = verdict(tmp_path, test, probe, kind="bwrap")
    assert v.run.status == "non_skip_pass", (v.run.summary_line(), v.run.failures)


def test_an_official_package_the_port_could_import_blocks(tmp_path):
    """The official reference where the port's interpreter finds it cannot be isolated: here the
    agent vendored it into the port's own tree."""
    repo, official = _repo(tmp_path, limit_test("assert_close(port(torch.ones(1, 4, 2)), ref(torch.ones(1, 4, 2)))"))
    ws = Workspace.create(repo, f"iso-{uuid.uuid4().hex[:6]}", official_ref_dir=official, root=tmp_path / "home")
    (ws.path / MODEL).write_text(PORT)
    (ws.path / "mini_official").mkdir()
    (ws.path / "mini_official/__init__.py").write_text(OFFICIAL)
    ws.checkpoint("port")
    packet = {**PACKET, "fastvideo_target_files": [MODEL, "mini_official/__init__.py"]}
    v = run_verdict(ws, packet, lambda tree: make_executor("local", tree, run_id=tree.run_id), tmp_path / "logs")
    assert v.run.status == "blocked" and "refused" in v.run.blocker, v.run.summary_line()


def test_records_of_a_run_are_json(tmp_path):
    v = verdict(tmp_path, limit_test("assert port.scaling == 0.5"))
    assert v.run.status == "non_skip_pass", v.run.summary_line()
    json.dumps(v.run.model_dump())


def test_a_port_process_that_cannot_start_blocks_at_once(tmp_path, monkeypatch):
    """An environment failure in the port's sandbox is the environment's: blocked with its
    reason, without waiting out the connection timeout."""
    import time

    import harness.verify.verdict as verdict_module

    monkeypatch.setattr(verdict_module, "PORT_FILES", ("harness_wire.py",))  # no server to run
    started = time.monotonic()
    v = verdict(tmp_path, limit_test("assert port.scaling == 0.5"))
    assert v.run.status == "blocked" and "before it connected" in v.run.blocker, v.run.summary_line()
    assert time.monotonic() - started < verdict_module.PORT_CONNECT_S


def test_a_port_sandbox_that_fails_to_start_is_an_infrastructure_fault(tmp_path):
    """The port's sandbox starts beside the trusted process: when it cannot start, the
    verdict raises the sandbox's own error (a resumable stop), after the trusted process
    was told and both sandboxes were closed."""
    from harness.sandbox.executors.base import InfrastructureError

    repo, official = _repo(tmp_path, limit_test("assert port.scaling == 0.5"))
    ws = Workspace.create(repo, f"iso-{uuid.uuid4().hex[:6]}", official_ref_dir=official, root=tmp_path / "home")
    (ws.path / MODEL).write_text(PORT)
    ws.checkpoint("the agent's port")
    made = []

    def new_executor(tree):
        ex = make_executor("local", tree, run_id=tree.run_id)
        if tree.run_id.endswith("-port"):
            def fail() -> None:
                raise InfrastructureError("the engine is gone")
            ex.start = fail
        closed = ex.close

        def close() -> None:
            made.append(tree.run_id)
            closed()
        ex.close = close
        return ex

    with pytest.raises(InfrastructureError, match="the engine is gone"):
        run_verdict(ws, PACKET, new_executor, tmp_path / "logs", commit=ws.head())
    assert len(made) == 2 and any(name.endswith("-port") for name in made)
