"""The verdict on the real FastVideo repository (opt-in): the Oobleck VAE removed at a base
commit and restored byte for byte by a scripted implementer passes, in FastVideo's own
interpreter on the CPU; the same port with one seeded numerical bug is red.

Runs when FASTVIDEO_CHECKOUT names a FastVideo clone and FASTVIDEO_PYTHON an interpreter that
runs its Oobleck tests (`scripts/fastvideo-cpu-env.sh` builds one); the official reference is
the stable-audio-tools clone at STABLE_AUDIO_TOOLS (default: `<checkout>/stable-audio-tools`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.evals.variants import cpu_variant
from tests.sandbox_fixtures import bwrap_ok  # noqa: F401  (fixture)
from tests.test_run_helpers import harness_cli

CHECKOUT = os.environ.get("FASTVIDEO_CHECKOUT")
PYTHON = os.environ.get("FASTVIDEO_PYTHON")
pytestmark = [pytest.mark.slow, pytest.mark.real_fastvideo,
              pytest.mark.skipif(not (CHECKOUT and PYTHON), reason="set FASTVIDEO_CHECKOUT and FASTVIDEO_PYTHON")]

MODEL = "fastvideo/models/vaes/oobleck.py"
OFFICIAL_TEST = "tests/local_tests/stable_audio/test_oobleck_vae_official_parity.py"
CPU_TEST = "tests/local_tests/stable_audio/test_oobleck_vae_official_parity_cpu.py"
SNAKE = "torch.sin(alpha * x).pow(2)"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


def _base_repo(tmp_path: Path) -> tuple[Path, str]:
    """A clone whose base commit lacks the Oobleck model and holds the CPU variant of its test."""
    repo = tmp_path / "fastvideo"
    subprocess.run(["git", "clone", "-q", "--no-checkout", CHECKOUT, str(repo)], check=True)
    listed = _git(repo, "ls-tree", "-r", "HEAD")
    blobs = [line.split(None, 3) for line in listed.splitlines() if line.split()[1] == "blob"]
    present = subprocess.run(["git", "-C", str(repo), "cat-file", "--batch-check"], input="\n".join(b[2] for b in blobs),
                             capture_output=True, text=True).stdout
    missing = {line.split()[0] for line in present.splitlines() if line.endswith("missing")}
    _git(repo, "read-tree", "HEAD")
    gone = [path for _, _, sha, path in blobs if sha in missing]  # a partial clone's absent media files
    if gone:
        _git(repo, "rm", "-q", "--cached", *gone)
    _git(repo, "checkout-index", "-a", "-q")
    gold = (repo / MODEL).read_text()
    (repo / CPU_TEST).write_text(cpu_variant((repo / OFFICIAL_TEST).read_text()))
    _git(repo, "rm", "-q", MODEL)
    _git(repo, "add", CPU_TEST)
    _git(repo, "commit", "-qm", "base: the Oobleck VAE removed; the CPU variant of its official parity test")
    official = Path(os.environ.get("STABLE_AUDIO_TOOLS") or Path(CHECKOUT) / "stable-audio-tools")
    shutil.copytree(official, repo / "stable-audio-tools", symlinks=True)
    with open(repo / ".git" / "info" / "exclude", "a") as f:
        f.write("/stable-audio-tools/\n")
    return repo, gold


def _packet(tmp_path: Path) -> Path:
    packet = {"component_context": {
        "model_family": "stable_audio", "component": "vae", "component_type": "vae", "mode": "parity-debug",
        "official_ref_dir": "stable-audio-tools",
        "official_definition_files": [{"path": "stable_audio_tools/models/autoencoders.py",
                                       "symbols": "OobleckEncoder, OobleckDecoder", "notes": "Snake activations"}],
        "official_instantiation_files": [{"path": "stable_audio_tools/models/autoencoders.py",
                                          "symbols": "OobleckEncoder, OobleckDecoder", "args": "channels=128"}],
        "official_weight_source": "random initialisation; the test copies the official weights into the port",
        "fastvideo_target_files": [MODEL, "fastvideo/configs/models/vaes/oobleck.py"],
        "local_tests_readme": "tests/local_tests/stable_audio/README.md",
        "port_state_file": "tests/local_tests/stable_audio/PORT_STATUS.md",
        "parity_test": CPU_TEST,
        "prototype_key_dumps": {"official": "converted_weights/stable_audio/_mapping/vae_official_keys.json",
                                "fastvideo": "converted_weights/stable_audio/_mapping/vae_fastvideo_keys.json"},
        "conversion": {"script": "not_needed", "converted_component_dir": "not_needed",
                       "model_index_library": "diffusers", "config_file": "config.json",
                       "mapping_notes": "the test builds both models from config", "production_loader_strictness":
                       "strict", "strict_load": "not_run"},
        "concerns_or_unknowns": ["none"]}}
    path = tmp_path / "packet.json"
    path.write_text(json.dumps(packet))
    return path


def _script(tmp_path: Path, name: str, model_source: str) -> Path:
    script = {"planner": [{"tool_calls": [{"name": "finish", "args": {
                  "summary": "restore the native Oobleck VAE", "plan": {"reuse_or_port": "port", "steps": ["model"]}}}]}],
              "implementer": [
                  {"tool_calls": [{"name": "write_file", "args": {"path": MODEL, "content": model_source}}]},
                  {"tool_calls": [{"name": "finish", "args": {"summary": "wrote the model", "files_changed": [MODEL]}}]}]}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(script, sort_keys=False))
    return path


@pytest.mark.bwrap
def test_the_real_oobleck_port_passes_and_a_seeded_bug_does_not(tmp_path, bwrap_ok):
    repo, gold = _base_repo(tmp_path)
    packet = _packet(tmp_path)
    assert SNAKE in gold
    runs = {}
    for name, source in (("gold", gold), ("bug", gold.replace(SNAKE, "torch.sin(alpha * x * 1.01).pow(2)"))):
        home = tmp_path / f"home-{name}"
        out = harness_cli(["run", "--packet", str(packet), "--repo", str(repo), "--model",
                           f"scripted:{_script(tmp_path, name, source)}", "--sandbox", "bwrap", "--python", PYTHON,
                           "--non-interactive", "--max-debug-rounds", "0", "--on-budget", "blocked"], home, tmp_path,
                          timeout=3000)
        handoff = json.loads(next((home / "runs").glob("*/handoff.json")).read_text())
        runs[name] = (out.returncode, handoff["parity_status"], out.stdout[-3000:])
    assert runs["gold"][:2] == (0, "non_skip_pass"), runs["gold"]
    assert runs["bug"][:2] == (4, "debug_red"), runs["bug"]
