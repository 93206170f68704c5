"""A small FastVideo-shaped git repo, a packet for it, and real parity runs, for the evidence tests."""

from __future__ import annotations

import json
from pathlib import Path

import git

from harness.contracts import ComponentContext
from harness.sandbox.executors import make_executor
from harness.sandbox.pytest_runner import ParityRun, run_parity_test
from harness.sandbox.workspace import Workspace

PARITY = "tests/local_tests/vaes/test_demo_vae_parity.py"
MODEL = "fastvideo/models/vaes/demo.py"
CONFIG = "fastvideo/configs/models/vaes/demo.py"
REF = "tests/local_tests/vaes/demo_vae_reference.json"
DUMPS = ("converted_weights/demo/_mapping/vae_official_keys.json", "converted_weights/demo/_mapping/vae_fastvideo_keys.json")

MODEL_SRC = '''"""Demo VAE."""
from fastvideo.configs.models.vaes.demo import DemoVAEConfig


class DemoVAE:
    def __init__(self, config: DemoVAEConfig) -> None:
        self.scale = config.scale

    def decode(self, latents):
        return [x * self.scale for x in latents]


EntryClass = DemoVAE
'''

CONFIG_SRC = '''from dataclasses import dataclass


@dataclass
class DemoVAEConfig:
    scale: float = 2.0
'''

PARITY_SRC = '''"""Demo VAE parity. Coverage scope: production_loader."""
import json
import os

import pytest

from fastvideo.configs.models.vaes.demo import DemoVAEConfig
from fastvideo.models.vaes.demo import DemoVAE

REF = "tests/local_tests/vaes/demo_vae_reference.json"
ATOL = 1e-6


def test_demo_vae_parity():
    if not os.path.exists(REF):
        pytest.skip(f"official reference dump missing: {REF}")
    ref = json.load(open(REF))
    out = DemoVAE(DemoVAEConfig()).decode(ref["latents"])
    diff = max(abs(a - b) for a, b in zip(out, ref["decoded"]))
    print(f"max_abs={diff}")
    assert diff < ATOL, f"Mismatched elements: max_abs={diff}"
'''


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_repo(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    repo = git.Repo.init(root)
    for pkg in ("fastvideo", "fastvideo/models", "fastvideo/models/vaes", "fastvideo/configs",
                "fastvideo/configs/models", "fastvideo/configs/models/vaes"):
        write(root, f"{pkg}/__init__.py", "")
    write(root, MODEL, MODEL_SRC)
    write(root, CONFIG, CONFIG_SRC)
    write(root, PARITY, PARITY_SRC)
    write(root, REF, json.dumps({"latents": [1.0, 2.0], "decoded": [2.0, 4.0]}))
    write(root, "scripts/checkpoint_conversion/demo_to_diffusers.py", "PREFIX = 'vae.'\n")
    repo.git.add(A=True)
    repo.git.commit(m="base", author="t <t@example.com>",
                    env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"})
    return root


def packet_dict(mode: str = "parity-debug", strictness: str = "strict") -> dict:
    return {
        "model_family": "demo",
        "component": "vae",
        "component_type": "vae",
        "mode": mode,
        "official_ref_dir": "demo_official",
        "official_definition_files": [{"path": "demo_official/vae.py", "symbols": "OfficialVAE", "notes": "decoder only"}],
        "official_instantiation_files": [{"path": "demo_official/build.py", "symbols": "build_vae", "args": "scale=2.0"}],
        "official_weight_source": "demo_official/vae.json",
        "fastvideo_target_files": [MODEL, CONFIG],
        "local_tests_readme": "tests/local_tests/demo/README.md",
        "port_state_file": "tests/local_tests/demo/PORT_STATUS.md",
        "parity_test": PARITY,
        "prototype_key_dumps": {"official": DUMPS[0], "fastvideo": DUMPS[1]},
        "conversion": {
            "script": "scripts/checkpoint_conversion/demo_to_diffusers.py",
            "converted_component_dir": "converted_weights/demo/vae",
            "model_index_library": "diffusers",
            "config_file": "config.json",
            "mapping_notes": "prefix vae.",
            "production_loader_strictness": strictness,
            "strict_load": "not_run",
        },
        "concerns_or_unknowns": ["decoder scaling constant taken from the official config"],
    }


def make_packet(**kw) -> ComponentContext:
    return ComponentContext.model_validate(packet_dict(**kw))


def make_workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(make_repo(tmp_path), "evidence", root=tmp_path / "home")


def run_parity(ws: Workspace, tmp_path: Path) -> tuple[ParityRun, str]:
    """Run the parity test for real (local executor) and checkpoint: (run, commit it ran at)."""
    commit = ws.checkpoint("before parity run") or ws.head()
    ex = make_executor("local", ws)
    ex.start()
    try:
        run = run_parity_test(ex, PARITY, tmp_path / "logs", timeout_s=120)
    finally:
        ex.close()
    return run, commit


def test_fixture_repo_parity_passes_for_real(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    run, _ = run_parity(ws, tmp_path)
    assert run.status == "non_skip_pass", run.summary_line()
    assert run.metrics.get("max_abs") == 0.0
