"""Preflight and `harness doctor`: every failure class found inside the real sandbox, before a
model is called; the same checkout made whole passes every check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.graph.doctor import run_doctor
from harness.run_config.config import RunConfig, sandbox_option_problems
from tests.sandbox_fixtures import bwrap_ok, make_repo  # noqa: F401  (fixture)

FAMILY = "demo"
TEST = "tests/local_tests/demo/test_demo_vae_parity.py"
PASSING_TEST = "def test_demo_vae_parity():\n    print('max_abs=0.0')\n    assert 1 + 1 == 2\n"


def _packet(tmp_path: Path, **changes: object) -> Path:
    packet = {
        "model_family": FAMILY, "component": "vae", "component_type": "vae", "mode": "parity-debug",
        "official_ref_dir": "official_ref",
        "official_definition_files": [{"path": "vae.py", "symbols": "VAE", "notes": "decoder"}],
        "official_instantiation_files": [{"path": "build.py", "symbols": "build", "args": "none"}],
        "official_weight_source": "acme/tiny-vae, subfolder vae",
        "fastvideo_target_files": ["fastvideo/models/vaes/demo.py"],
        "local_tests_readme": f"tests/local_tests/{FAMILY}/README.md",
        "port_state_file": f"tests/local_tests/{FAMILY}/PORT_STATUS.md",
        "parity_test": TEST,
        "prototype_key_dumps": {"official": f"converted_weights/{FAMILY}/_mapping/vae_official_keys.json",
                                "fastvideo": f"converted_weights/{FAMILY}/_mapping/vae_fastvideo_keys.json"},
        "conversion": {"script": "not_needed", "converted_component_dir": f"converted_weights/{FAMILY}/vae",
                       "model_index_library": "diffusers", "config_file": "config.json", "mapping_notes": "none",
                       "production_loader_strictness": "strict", "strict_load": "not_run"},
        "concerns_or_unknowns": [],
        **changes,
    }
    path = tmp_path / "packet.json"
    path.write_text(json.dumps({"component_context": packet}))
    return path


def _checkout(root: Path, *, broken: bool) -> Path:
    """A FastVideo-shaped checkout; `broken` plants one failure of each class."""
    files = {
        ".gitignore": "official_ref/\nconverted_weights/\n",
        "fastvideo/__init__.py": "import harness_absent_fastvideo_dep  # noqa\n" if broken else "",
        "fastvideo/models/vaes/demo.py": "class VAE: ...\n",
        TEST: ("import harness_absent_test_dep  # noqa\n" if broken else "") + PASSING_TEST,
    }
    repo = make_repo(root / "checkout", files)
    ref = repo / "official_ref"
    ref.mkdir()
    (ref / "vae.py").write_text("class VAE: ...\n")
    (ref / "build.py").write_text("def build(): ...\n")
    ref.chmod(0o700 if broken else 0o755)  # root's; the sandbox uid cannot read a 0700 folder
    if not broken:
        (repo / "converted_weights" / FAMILY / "vae").mkdir(parents=True)
        (repo / "converted_weights" / FAMILY / "vae" / "config.json").write_text("{}")
    return repo


def _hf_cache(root: Path, *, with_model: bool) -> Path:
    cache = root / "hf-cache"
    (cache / "hub").mkdir(parents=True)
    if with_model:
        (cache / "hub" / "models--acme--tiny-vae" / "snapshots").mkdir(parents=True)
    return cache


def _doctor(tmp_path: Path, repo: Path, sandbox: str, **options: object):
    cfg = RunConfig(packet=_packet(tmp_path), repo=repo, sandbox=sandbox, **options)  # type: ignore[arg-type]
    report = run_doctor(cfg)
    assert not report.problems, report.problems
    return {c.name: c for c in report.checks}


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the unreadable-reference case needs the harness as root (sandbox uid differs)")


@pytest.fixture(scope="module")
def broken(tmp_path_factory, bwrap_ok):  # noqa: F811
    root = tmp_path_factory.mktemp("broken")
    repo = _checkout(root, broken=True)
    return _doctor(root, repo, "bwrap", gpus="all", hf_cache=str(_hf_cache(root, with_model=False)))


@pytest.fixture(scope="module")
def whole(tmp_path_factory, bwrap_ok):  # noqa: F811
    root = tmp_path_factory.mktemp("whole")
    repo = _checkout(root, broken=False)
    return _doctor(root, repo, "bwrap", hf_cache=str(_hf_cache(root, with_model=True)))


pytestmark = [pytest.mark.bwrap, pytest.mark.slow]


def test_the_whole_checkout_passes_every_check(whole) -> None:
    assert all(c.ok for c in whole.values()), [c for c in whole.values() if not c.ok]
    assert whole["torch"].detail.startswith(__import__("torch").__version__)
    assert "uid" in whole["interpreter"].detail
    assert {"official reference", "converted weights", "official weights", "parity test"} <= set(whole)


def test_missing_third_party_module(broken) -> None:
    check = broken["import harness_absent_test_dep"]
    assert not check.ok and "not importable" in check.detail and "install harness_absent_test_dep" in check.fix


def test_fastvideo_that_does_not_import(broken) -> None:
    check = broken["fastvideo"]
    assert not check.ok and "harness_absent_fastvideo_dep" in check.detail


def test_no_cuda_when_gpus_asked(broken, whole) -> None:
    assert not broken["cuda"].ok and "--gpus all asked for CUDA" in broken["cuda"].detail
    assert "cuda" not in whole  # not asked, not checked


@needs_root
def test_unreadable_official_reference(broken) -> None:
    assert not broken["official reference"].ok and "PermissionError" in broken["official reference"].detail
    assert not broken["checkout folder official_ref"].ok


def test_missing_weights(broken) -> None:
    assert not broken["converted weights"].ok and "run the conversion first" in broken["converted weights"].fix
    assert not broken["official weights"].ok and "models--acme--tiny-vae" in broken["official weights"].detail
    assert "huggingface-cli download acme/tiny-vae" in broken["official weights"].fix


def test_parity_test_that_does_not_collect(broken) -> None:
    check = broken["parity test"]
    assert not check.ok and "does not collect" in check.detail and "harness_absent_test_dep" in check.detail


def _venv(path: Path, module: str | None = None) -> Path:
    """A second venv; it sees the harness venv's packages (torch, pytest) through a .pth file,
    and holds `module`, which the harness venv lacks."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (site,) = path.glob("lib/python*/site-packages")
    import pytest as _pytest

    (site / "harness-venv.pth").write_text(str(Path(_pytest.__file__).parent.parent) + "\n")
    if module:
        (site / f"{module}.py").write_text("VALUE = 42\n")
    return path / "bin" / "python"


def test_interpreter_that_cannot_run(tmp_path: Path) -> None:
    repo = _checkout(tmp_path, broken=False)
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 0\n")  # not executable
    checks = _doctor(tmp_path, repo, "local", python=str(fake))
    assert list(checks) == ["interpreter"]  # nothing else can run
    detail = checks["interpreter"].detail
    assert "Permission denied" in detail and "uid" in detail and "exit 126" in detail
    assert "--python" in checks["interpreter"].fix


def test_pytest_missing_from_the_project_interpreter(tmp_path: Path) -> None:
    repo = _checkout(tmp_path, broken=False)
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    checks = _doctor(tmp_path, repo, "local", python=str(bare / "bin" / "python"))
    assert checks["interpreter"].ok and str(bare) in checks["interpreter"].detail
    assert not checks["pytest"].ok and not checks["torch"].ok
    assert not checks["parity test"].ok


def test_python_option_runs_the_project_venv(tmp_path: Path) -> None:
    repo = _checkout(tmp_path, broken=False)
    (repo / TEST).write_text("import harness_only_in_project_venv\n" + PASSING_TEST)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "dep"], check=True)
    python = _venv(tmp_path / "project-venv", "harness_only_in_project_venv")
    without = _doctor(tmp_path, repo, "local")
    assert not without["import harness_only_in_project_venv"].ok
    with_python = _doctor(tmp_path, repo, "local", python=str(python))
    assert with_python["import harness_only_in_project_venv"].ok and with_python["parity test"].ok


def test_bwrap_shows_the_chosen_interpreter(tmp_path: Path, bwrap_ok) -> None:  # noqa: F811
    from harness.sandbox.executors import make_executor
    from harness.sandbox.workspace import Workspace

    repo = _checkout(tmp_path, broken=False)
    python = _venv(tmp_path / "elsewhere" / "venv", "harness_only_in_project_venv")
    ws = Workspace.create(repo, "interp", root=tmp_path / "home")
    probe = "python -c 'import sys, harness_only_in_project_venv as m; print(sys.prefix, m.VALUE)'"
    with make_executor("bwrap", ws, python=python) as ex:
        result = ex.run(probe)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == [str(python.parent.parent), "42"]
    with make_executor("bwrap", ws) as ex:  # the harness's own python lacks the module
        assert "No module named 'harness_only_in_project_venv'" in ex.run(probe).stderr


def test_failed_preflight_ends_the_run_blocked_before_any_model_call(tmp_path: Path) -> None:
    from tests.test_run_helpers import example, harness_cli, plan_turns, write_script

    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns())
    home = tmp_path / "home"
    result = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                          "--model", f"scripted:{script}", "--sandbox", "local", "--gpus", "all",
                          "--non-interactive"], home, tmp_path)
    assert result.returncode == 4, result.stdout + result.stderr
    assert "Preflight failed; no model was called:" in result.stdout
    assert "- cuda: --gpus all asked for CUDA" in result.stdout and "fix: the host needs the NVIDIA driver" in result.stdout
    (summary_path,) = (home / "runs").glob("*/summary.json")
    summary = json.loads(summary_path.read_text())
    assert summary["status"] == "blocked" and summary["blocker"].startswith("preflight: 1 check(s) failed: cuda")
    assert summary["totals"]["input_tokens"] == 0 and "plan" not in summary["nodes"]
    assert not (summary_path.parent / "trajectory.jsonl").exists() or not (summary_path.parent / "trajectory.jsonl").read_text().strip()


def test_bwrap_gpus_bind_the_nvidia_device_nodes(tmp_path: Path, monkeypatch) -> None:
    from harness.sandbox.executors import make_executor, process
    from harness.sandbox.workspace import Workspace

    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for name in ("nvidia0", "nvidiactl", "nvidia-uvm", "null"):
        (dev / name).write_text("")
    nodes = process.nvidia_device_nodes(dev)
    assert nodes == [str(dev / n) for n in ("nvidia-uvm", "nvidia0", "nvidiactl")] + [str(dev / "nvidia-caps")]
    monkeypatch.setattr(process, "nvidia_device_nodes", lambda: nodes)
    ws = Workspace.create(_checkout(tmp_path, broken=False), "gpus", root=tmp_path / "home")
    with_gpus = make_executor("bwrap", ws, gpus="all")
    without = make_executor("bwrap", ws)
    for ex in (with_gpus, without):
        ex._etc_dir = str(tmp_path)  # argv only: the sandbox is not started
    argv = with_gpus._argv("true")
    assert all(argv[i - 1:i + 2] == ["--dev-bind", node, node] for node in nodes for i in [argv.index(node)])
    assert "--dev-bind" not in without._argv("true")
    with pytest.raises(ValueError, match="needs the docker executor"):
        make_executor("bwrap", ws, gpus="2")


def test_bwrap_network_is_opt_in(tmp_path: Path) -> None:
    from harness.sandbox.executors import make_executor
    from harness.sandbox.workspace import Workspace

    ws = Workspace.create(_checkout(tmp_path, broken=False), "net", root=tmp_path / "home")
    closed, opened = make_executor("bwrap", ws), make_executor("bwrap", ws, network=True)
    for ex in (closed, opened):
        ex._etc_dir = str(tmp_path)  # argv only: the sandbox is not started
    assert "--unshare-net" in closed._argv("true") and "--unshare-net" not in opened._argv("true")
    local = RunConfig(packet=Path("p"), repo=Path("r"), sandbox="local", network=True)
    assert any(p.startswith("network: the local sandbox") for p in sandbox_option_problems(local))


def test_sandbox_options_are_checked_before_anything_starts(tmp_path: Path) -> None:
    cfg = RunConfig(packet=Path("p"), repo=Path("r"), sandbox="docker", python="/usr/bin/python3",
                    sandbox_user="somebody", memory="lots", pids_limit=2, hf_cache=str(tmp_path / "nope"),
                    pass_env=["HF_TOKEN", "AWS_SECRET_ACCESS_KEY"])
    problems = " | ".join(sandbox_option_problems(cfg))
    for expected in ("python: --python is for bwrap and local", "sandbox_user: invalid --sandbox-user 'somebody'",
                     "memory: invalid size 'lots'", "pids_limit: 2 is too small", "hf_cache:",
                     "pass_env: AWS_SECRET_ACCESS_KEY is not a token variable"):
        assert expected in problems, (expected, problems)
    assert "pass_env: HF_TOKEN" not in problems  # an allowed name is fine
