"""Runs in a FastVideo-like environment: the official reference as a git-ignored clone at the
checkout root read through `<FAMILY>_OFFICIAL_REF_DIR`, an HF cache and a token passed by name
(found in no file the run writes), and FastVideo's docker image layout (Python under root's
home, venv in /opt/venv)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.run_config.config import RunConfig
from harness.runs.runner import start_run
from tests.sandbox_fixtures import bwrap_ok, docker_client, fastvideo_like_image, sandbox_image  # noqa: F401  (fixtures)
from tests.test_run_helpers import example, load_handoff, plan_turns, write_gold_turns, write_script

pytestmark = pytest.mark.slow

PLANTED = "hf_plantedTOKENvalue0123456789abcdefXYZ"
CACHE_LOGIN = "hf_cacheLOGINvalue9876543210fedcbaQRS"
CLONE = "TinyVid-Official"
OLD_REF_LINE = 'OFFICIAL_REF_DIR = Path(os.environ.get("OFFICIAL_REF_DIR") or REPO_ROOT.parent / "official")'


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                   capture_output=True)


def _fastvideo_shaped(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(checkout, packet, hf cache): the official code cloned, git-ignored, at the checkout root;
    the parity test finds it as FastVideo's tests do and checks the cache and the token."""
    ex = example(tmp_path)
    repo = ex.repo
    shutil.copytree(ex.official_dir, repo / CLONE)
    (repo / ".gitignore").write_text((repo / ".gitignore").read_text() + f"/{CLONE}/\n")
    packet = json.loads(Path(ex.packets["vae:parity-debug"]).read_text())
    test = repo / packet["parity_test"]
    text = test.read_text()
    assert OLD_REF_LINE in text
    digest = hashlib.sha256(PLANTED.encode()).hexdigest()
    text = text.replace(OLD_REF_LINE, f'''OFFICIAL_REF_DIR = Path(os.environ.get("TINYVID_OFFICIAL_REF_DIR", REPO_ROOT / "{CLONE}"))
assert (REPO_ROOT / "{CLONE}" / "tinyvid_official").is_dir(), "no clone at the checkout root"
assert Path(os.environ["TINYVID_OFFICIAL_REF_DIR"]).is_dir(), "TINYVID_OFFICIAL_REF_DIR is not set"
import hashlib as _hashlib
assert _hashlib.sha256(os.environ["HF_TOKEN"].encode()).hexdigest() == "{digest}", "HF_TOKEN not passed"
print("the token is", os.environ["HF_TOKEN"])
_HF = Path(os.environ["HF_HOME"])
assert (_HF / "hub" / "models--acme--tiny" / "marker.txt").read_text() == "cached"
try:
    _login = (_HF / "token").read_text()
except OSError:  # masked as an unreadable file
    _login = ""
assert _login == "", "the cache's login is visible"
''')
    test.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "parity test reads TINYVID_OFFICIAL_REF_DIR, the cache and the token")
    packet["official_ref_dir"] = CLONE
    packet_path = tmp_path / "packet.json"
    packet_path.write_text(json.dumps(packet))
    cache = tmp_path / "hf-cache"
    (cache / "hub" / "models--acme--tiny").mkdir(parents=True)
    (cache / "hub" / "models--acme--tiny" / "marker.txt").write_text("cached")
    (cache / "token").write_text(CACHE_LOGIN)
    return repo, packet_path, cache


def _files_holding(root: Path, secret: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and secret.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


@pytest.mark.parametrize("sandbox", [pytest.param("bwrap", marks=pytest.mark.bwrap),
                                     pytest.param("docker", marks=pytest.mark.docker)])
def test_official_clone_cache_and_token_reach_the_test_and_no_file(tmp_path: Path, sandbox: str, request,
                                                                   monkeypatch) -> None:
    request.getfixturevalue("bwrap_ok" if sandbox == "bwrap" else "sandbox_image")
    repo, packet, cache = _fastvideo_shaped(tmp_path)
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    home = tmp_path / "home"
    out = start_run(RunConfig(packet=packet, repo=repo, model=f"scripted:{script}", sandbox=sandbox, home=home,
                              pass_env=["HF_TOKEN"], hf_cache=str(cache)))
    assert out.status == "completed", out.summary
    assert load_handoff(out.run_dir).parity_status == "non_skip_pass"
    log = next((out.run_dir / "logs").glob("parity-*.log")).read_text()
    assert "the token is [HF_TOKEN]" in log  # printed by the test, masked by the sandbox
    for secret in (PLANTED, CACHE_LOGIN):
        assert _files_holding(home, secret) == []
        history = subprocess.run(["git", "-C", str(repo), "log", "-p", "--all"], capture_output=True, text=True).stdout
        assert secret not in history
    assert json.loads((out.run_dir / "run.json").read_text())["config"]["pass_env"] == ["HF_TOKEN"]


@pytest.mark.bwrap
def test_without_the_token_the_test_does_not_pass(tmp_path: Path, bwrap_ok, monkeypatch) -> None:  # noqa: F811
    repo, packet, cache = _fastvideo_shaped(tmp_path)
    monkeypatch.setenv("HF_TOKEN", PLANTED)  # set on the host, but not passed by name
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    out = start_run(RunConfig(packet=packet, repo=repo, model=f"scripted:{script}", sandbox="bwrap",
                              home=tmp_path / "home", hf_cache=str(cache), max_debug_rounds=0, on_budget="blocked"))
    assert out.status == "blocked", out.summary
    # the parity test reads HF_TOKEN at import: the preflight's collection says so, before any model call
    assert "does not collect" in out.summary["blocker"] and "KeyError: 'HF_TOKEN'" in out.summary["blocker"]
    assert out.summary["outcome_line"].startswith("blocked: preflight: 1 check(s) failed: parity test")
    assert out.summary["totals"]["input_tokens"] == 0


@pytest.mark.docker
def test_fastvideo_image_layout_runs_the_example_port_to_a_pass(tmp_path: Path, fastvideo_like_image: str) -> None:
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=write_gold_turns())
    out = start_run(RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model=f"scripted:{script}",
                              sandbox="docker", image=fastvideo_like_image, home=tmp_path / "home"))
    assert out.status == "completed", out.summary
    assert load_handoff(out.run_dir).parity_status == "non_skip_pass"
    log = (out.run_dir / "run.log").read_text()
    assert "user root (no capabilities): the image's python does not run as 10001:10001" in log


@pytest.mark.docker
def test_fastvideo_image_as_the_unprivileged_user_is_a_clear_preflight_failure(tmp_path: Path, fastvideo_like_image: str) -> None:
    ex = example(tmp_path)
    script = write_script(tmp_path / "s.yaml", planner=plan_turns())
    out = start_run(RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model=f"scripted:{script}",
                              sandbox="docker", image=fastvideo_like_image, sandbox_user="10001",
                              home=tmp_path / "home"))
    assert (out.status, out.exit_code) == ("blocked", 4), out.summary
    (check,) = [c for c in out.summary["preflight"] if not c["ok"]]
    assert check["name"] == "interpreter"
    assert "Permission denied" in check["detail"] and "user 10001:10001" in check["detail"]
    assert "--sandbox-user root" in check["fix"]
    assert out.summary["totals"]["input_tokens"] == 0


def test_only_the_parity_test_gets_the_token_and_it_leaves_no_trace(tmp_path: Path, monkeypatch) -> None:
    from harness.sandbox.executors import TestAccess, make_executor
    from harness.sandbox.workspace import Workspace
    from tests.sandbox_fixtures import make_repo

    ws = Workspace.create(make_repo(tmp_path / "checkout", {"README.md": "x\n"}), "tokens", root=tmp_path / "home")
    monkeypatch.setenv("HF_TOKEN", PLANTED)
    leak = 'echo "token=$HF_TOKEN"; echo "$HF_TOKEN" > leak.txt; echo "$HF_TOKEN" >&2'
    with make_executor("local", ws, access=TestAccess(pass_env=("HF_TOKEN",))) as ex:
        agent = ex.run(leak)  # an agent's command: no token at all
        assert agent.stdout.strip() == "token=" and (ws.path / "leak.txt").read_text() == "\n"
        test = ex.run_test(leak)  # the parity test: the token, masked in output and scrubbed from files
    assert test.stdout.strip() == "token=[HF_TOKEN]" and test.stderr.strip() == "[HF_TOKEN]"
    assert (ws.path / "leak.txt").read_text() == "[HF_TOKEN]\n"
    assert _files_holding(tmp_path, PLANTED) == []
