"""The suite built from a real FastVideo clone (opt-in): more than twenty VAE and encoder port
tasks listed with what this machine lacks, and the CPU variant of the Oobleck VAE's official
parity test validated through the isolated verdict in FastVideo's own interpreter (the null
agent does not pass, the gold does; on its twin the gold does not pass and the cheater does).

Runs when FASTVIDEO_CHECKOUT names a FastVideo clone and FASTVIDEO_PYTHON an interpreter that
runs its Oobleck tests (`scripts/fastvideo-cpu-env.sh` builds one); the official reference is the
stable-audio-tools clone at STABLE_AUDIO_TOOLS (default: `<checkout>/stable-audio-tools`, a
git-ignored folder at the checkout root, where the build finds it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.cli import app
from tests.sandbox_fixtures import bwrap_ok  # noqa: F401  (fixture)

CHECKOUT = os.environ.get("FASTVIDEO_CHECKOUT")
PYTHON = os.environ.get("FASTVIDEO_PYTHON")
pytestmark = [pytest.mark.slow, pytest.mark.real_fastvideo, pytest.mark.timeout(7200),
              pytest.mark.skipif(not (CHECKOUT and PYTHON), reason="set FASTVIDEO_CHECKOUT and FASTVIDEO_PYTHON")]


def _official() -> list[str]:
    given = os.environ.get("STABLE_AUDIO_TOOLS")
    inside = Path(CHECKOUT or ".") / "stable-audio-tools"
    return ["--official", given] if given and Path(given).resolve() != inside.resolve() else []


def _build(out: Path, *extra: str) -> tuple[dict[str, dict], str, float]:
    started = time.monotonic()
    result = CliRunner().invoke(app, ["eval", "build-suite", "--repo", CHECKOUT, "--out", str(out), "--sandbox", "bwrap",
                                      "--python", PYTHON, *_official(), *extra])
    assert result.exit_code == 0, result.output
    entries = {e["id"]: e for e in json.loads((out / "suite.json").read_text())["tasks"]}
    return entries, result.output, time.monotonic() - started


@pytest.mark.bwrap
def test_the_suite_of_a_real_clone_lists_its_components_and_validates_the_oobleck_cpu_task(bwrap_ok, tmp_path):
    listed, printed, listed_s = _build(tmp_path / "all", "--no-probe", "--no-validate")
    ports = [e for e in listed.values() if e["kind"] == "port"]
    components = {e["component"] for e in ports}
    assert len(ports) >= 20 and len(components) >= 20, sorted(components)
    assert {"oobleck", "autoencoder_kl", "t5_hf", "gemma", "qwen3", "mistral3", "flux2vae", "gamecraftvae"} <= components
    assert listed["port-stable-audio-oobleck"]["runnable"] is False
    assert listed["port-stable-audio-oobleck"]["needs"][0].startswith("CUDA")
    assert listed["port-stable-audio-oobleck-cpu"]["runnable"] is True
    assert any("fastvideo/configs/models/vaes/oobleck.py: kept" in k for k in listed["port-stable-audio-oobleck"]["kept"])
    assert "port-stable-audio-oobleck-cpu" in printed

    checked, _, checked_s = _build(tmp_path / "oobleck", "--components", "oobleck")
    task, twin = checked["port-stable-audio-oobleck-cpu"], checked["impossible-port-stable-audio-oobleck-cpu"]
    assert task["checked"][0] == "preflight: passed"
    assert (task["validation"]["null"], task["validation"]["oracle"]) == ("debug_red", "non_skip_pass"), task
    assert (twin["validation"]["oracle"], twin["validation"]["cheat"]) == ("debug_red", "non_skip_pass"), twin
    assert task["runnable"] and twin["runnable"] and "excluded" not in task and "excluded" not in twin
    print(f"\nlisted {len(listed)} tasks ({len(ports)} ports, {len(components)} components) in {listed_s:.0f} s; "
          f"oobleck built, preflighted and validated in {checked_s:.0f} s (task {task['validation']['seconds']} s, "
          f"twin {twin['validation']['seconds']} s)")
