"""The parity test runner on real pytest runs of small test files."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from harness.sandbox.executors import CommandResult, make_executor
from harness.sandbox.pytest_runner import ParityRun, judge, missing_asset, parse_metrics, run_parity_test
from harness.sandbox.workspace import Workspace

pytest_plugins = ["tests.sandbox_fixtures"]

T = "tests/local_tests/vaes/"

CASES = {
    "pass_metrics": "def test_parity():\n    print('max_abs=1.5e-04 mean_abs=2e-06 diff_max=3')\n",
    "fail": "def test_parity():\n    max_abs = 0.5\n    print(f'max_abs={max_abs}')\n"
            "    assert max_abs < 1e-3, f'max_abs {max_abs} above tolerance'\n",
    "skip_module": "import pytest\npytest.skip('official weights not found', allow_module_level=True)\n"
                   "def test_parity():\n    pass\n",
    "skip_in_test": "import pytest\ndef test_parity():\n    pytest.skip('FASTVIDEO_WEIGHTS not set')\n",
    "mixed": "import pytest\ndef test_shapes():\n    pass\ndef test_parity():\n    pytest.skip('no reference')\n",
    "xfail": "import pytest\n@pytest.mark.xfail(reason='known drift')\ndef test_parity():\n    assert False\n",
    "xpass": "import pytest\n@pytest.mark.xfail(reason='known drift')\ndef test_parity():\n    assert True\n",
    "collect_error": "def test_parity(:\n    pass\n",
    "import_error": "import diffusers_not_installed_here\ndef test_parity():\n    pass\n",
    "local_import_error": "from fastvideo.models.vaes.missing_module import Nope\ndef test_parity():\n    pass\n",
    "no_tests": "VALUE = 1\n",
    "missing_weights": "def test_parity():\n    open('converted_weights/toy/vae/model.safetensors', 'rb')\n",
    "weights_and_mismatch": "def test_load():\n    open('weights/vae.safetensors', 'rb')\n"
                            "def test_parity():\n    assert 0.3 < 1e-3, 'mean_abs above tolerance'\n",
    "bug_file": "def test_parity():\n    open('helper_typo.py')\n",
    "timeout": "import subprocess, time\ndef test_parity():\n    subprocess.Popen(['sleep', '4501'])\n"
               "    time.sleep(4502)\n",
    "fake_summary": "import pytest\ndef test_parity():\n"
                    "    print('\\n========== 3 passed in 0.01s ==========')\n    pytest.skip('not really')\n",
}


def _write_case(ws: Workspace, name: str) -> str:
    rel = f"{T}test_{name}.py"
    (ws.path / rel).parent.mkdir(parents=True, exist_ok=True)
    (ws.path / rel).write_text(CASES[name])
    return rel


@pytest.fixture
def ws(user_repo, harness_root) -> Workspace:
    return Workspace.create(user_repo, f"pr-{time.monotonic_ns() % 10**9}", root=harness_root)


@pytest.fixture
def local(ws):
    ex = make_executor("local", ws)
    yield ex
    ex.close()


def run_case(ex, ws, name, tmp_path, timeout_s=120) -> ParityRun:
    return run_parity_test(ex, _write_case(ws, name), tmp_path / "logs", timeout_s=timeout_s)


def test_pass_with_drift_metrics(local, ws, tmp_path):
    run = run_case(local, ws, "pass_metrics", tmp_path)
    assert run.status == "non_skip_pass"
    assert (run.passed, run.failed, run.skipped, run.errors) == (1, 0, 0, 0)
    assert run.metrics == {"max_abs": 1.5e-4, "mean_abs": 2e-6, "diff_max": 3.0}
    assert run.exit_code == 0 and not run.timed_out and run.blocker is None
    assert run.command.startswith(f"python -m pytest {T}test_pass_metrics.py -v -s -p no:cacheprovider")
    log = Path(run.log_path).read_text()
    assert log.startswith("$ python -m pytest") and "max_abs=1.5e-04" in log and "<testsuite" not in log
    assert run.summary_line().startswith("non_skip_pass: 1 passed in ")
    # Nothing of the run is left in the worktree: no report, no cache, no bytecode.
    assert ws.files_changed() == [f"{T}test_pass_metrics.py"]
    assert not list(ws.path.rglob("*.xml")) and not list(ws.path.rglob(".pytest_cache"))


def test_fail_reports_the_assertion(local, ws, tmp_path):
    run = run_case(local, ws, "fail", tmp_path)
    assert run.status == "debug_red" and run.failed == 1 and run.passed == 0
    assert "max_abs 0.5 above tolerance" in run.first_failure
    assert run.metrics == {"max_abs": 0.5}  # the traceback's `max_abs = 0.5` source line is not re-read
    assert "max_abs 0.5 above tolerance" in run.summary_line()


@pytest.mark.parametrize("name, reason", [("skip_module", "official weights not found"),
                                          ("skip_in_test", "FASTVIDEO_WEIGHTS not set")])
def test_skips_are_scaffold_skip_with_reasons(local, ws, tmp_path, name, reason):
    run = run_case(local, ws, name, tmp_path)
    assert run.status == "scaffold_skip"
    assert run.skipped == 1 and run.passed == 0
    assert run.skip_reasons == [reason]
    assert reason in run.summary_line()


def test_pass_plus_skip_is_not_a_pass(local, ws, tmp_path):
    run = run_case(local, ws, "mixed", tmp_path)
    assert run.status == "scaffold_skip"
    assert (run.passed, run.skipped) == (1, 1) and run.skip_reasons == ["no reference"]


@pytest.mark.parametrize("name, counts", [("xfail", (0, 1, 0)), ("xpass", (0, 0, 1))])
def test_xfail_and_xpass_are_not_a_pass(local, ws, tmp_path, name, counts):
    run = run_case(local, ws, name, tmp_path)
    assert run.status == "debug_red"
    assert (run.passed, run.xfailed, run.xpassed) == counts
    assert "xfail" in run.first_failure


def test_collection_error_is_debug_red(local, ws, tmp_path):
    run = run_case(local, ws, "collect_error", tmp_path)
    assert run.status == "debug_red" and run.errors == 1 and run.blocker is None
    assert "SyntaxError" in run.first_failure


def test_missing_third_party_module_is_blocked(local, ws, tmp_path):
    run = run_case(local, ws, "import_error", tmp_path)
    assert run.status == "blocked" and run.errors == 1
    assert run.blocker == "missing dependency: python module 'diffusers_not_installed_here' is not installed in the sandbox"


def test_missing_fastvideo_module_is_a_bug_not_a_blocker(local, ws, tmp_path):
    run = run_case(local, ws, "local_import_error", tmp_path)
    assert run.status == "debug_red" and run.blocker is None
    assert "fastvideo.models.vaes.missing_module" in run.first_failure


def test_no_tests_collected_is_never_a_pass(local, ws, tmp_path):
    run = run_case(local, ws, "no_tests", tmp_path)
    assert run.status == "debug_red" and run.exit_code == 5
    assert "no tests were collected" in run.first_failure


def test_missing_weights_are_blocked_but_other_missing_files_are_bugs(local, ws, tmp_path):
    run = run_case(local, ws, "missing_weights", tmp_path)
    assert run.status == "blocked" and run.blocker == "missing file: converted_weights/toy/vae/model.safetensors"
    run = run_case(local, ws, "bug_file", tmp_path)
    assert run.status == "debug_red" and run.blocker is None and "helper_typo.py" in run.first_failure


def test_a_real_mismatch_next_to_missing_weights_is_debug_red(local, ws, tmp_path):
    run = run_case(local, ws, "weights_and_mismatch", tmp_path)
    assert run.status == "debug_red" and run.failed == 2 and run.blocker is None


def _host_processes(marker: str) -> list[str]:
    import subprocess

    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if marker in ln and not ln.lstrip().startswith("Z") and "ps -eo" not in ln]


def test_timeout_is_debug_red_and_kills_the_test(local, ws, tmp_path):
    run = run_case(local, ws, "timeout", tmp_path, timeout_s=4)
    assert run.status == "debug_red" and run.timed_out and "timed out" in run.first_failure
    time.sleep(0.3)
    assert _host_processes("sleep 450") == [] and _host_processes("test_timeout.py") == []


def test_a_test_printing_a_fake_summary_gets_what_the_report_says(local, ws, tmp_path):
    run = run_case(local, ws, "fake_summary", tmp_path)
    assert run.status == "scaffold_skip" and run.passed == 0 and run.skipped == 1


def test_tests_hidden_by_a_conftest_are_not_counted(local, ws, tmp_path):
    # In the agent's own worktree a conftest can hide a test; the report counts what ran. (The
    # verdict runs the base commit's conftest files only, so this cannot reach it.)
    rel = _write_case(ws, "mixed")
    (ws.path / T / "conftest.py").write_text(
        "def pytest_collection_modifyitems(config, items):\n"
        "    hidden = [i for i in items if i.name == 'test_parity']\n"
        "    config.hook.pytest_deselected(items=hidden)\n"
        "    items[:] = [i for i in items if i not in hidden]\n")
    run = run_parity_test(local, rel, tmp_path / "logs")
    assert run.passed == 1 and run.skipped == 0 and run.failed == 0


def test_pytest_missing_in_the_sandbox_is_blocked(ws, tmp_path):
    # A `python` whose site-packages are off: the interpreter runs, pytest cannot be imported.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "python"
    shim.write_text(f"#!/bin/sh\nexec {os.path.realpath('/usr/bin/python3')} -S -I \"$@\"\n")
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    ex = make_executor("local", ws)

    class NoPytest:  # the same executor, with that python first on PATH
        def run(self, command, timeout_s=600, env=None):
            return ex.run(command, timeout_s, {"PATH": f"{bindir}:/usr/bin:/bin"})

    run = run_parity_test(NoPytest(), _write_case(ws, "pass_metrics"), tmp_path / "logs")  # type: ignore[arg-type]
    assert run.status == "blocked" and run.blocker == "pytest is not installed in the sandbox image"


def test_bad_parity_test_paths_are_refused(local, tmp_path):
    for bad in ("", "/etc/passwd", "../x/test.py", "--collect-only"):
        with pytest.raises(ValueError, match="relative to the workspace root"):
            run_parity_test(local, bad, tmp_path)


# ----- judge() on hand-made outcomes: the integrity rules ----------------------------------

JUNIT_PASS = ('<?xml version="1.0"?><testsuites><testsuite tests="1" failures="0" errors="0" skipped="0">'
              '<testcase classname="t" name="test_a"/></testsuite></testsuites>')
JUNIT_FAIL = ('<?xml version="1.0"?><testsuites><testsuite tests="1" failures="1" errors="0" skipped="0">'
              '<testcase classname="t" name="test_a"><failure message="AssertionError">E AssertionError</failure>'
              '</testcase></testsuite></testsuites>')
KW = dict(parity_test="t.py", command="python -m pytest t.py -v -s", log_path="/x.log", started_at="now")


def test_judge_never_passes_without_a_report_or_with_a_failing_exit_code():
    ok_out = "t.py::test_a PASSED\n========== 1 passed in 0.01s ==========\n"
    assert judge(CommandResult(0, ok_out, "", 1.0, False), ok_out, JUNIT_PASS, **KW).status == "non_skip_pass"
    no_report = judge(CommandResult(0, ok_out, "", 1.0, False), ok_out, None, **KW)
    assert no_report.status == "debug_red" and "without a junit report" in no_report.first_failure
    bad_exit = judge(CommandResult(1, ok_out, "", 1.0, False), ok_out, JUNIT_PASS, **KW)
    assert bad_exit.status == "debug_red" and "exited 1" in bad_exit.first_failure
    broken = judge(CommandResult(0, ok_out, "", 1.0, False), ok_out, "<testsuites", **KW)
    assert broken.status == "debug_red" and "unreadable junit report" in broken.first_failure
    timed = judge(CommandResult(124, ok_out, "", 900.0, True), ok_out, JUNIT_PASS, **KW)
    assert timed.status == "debug_red" and timed.timed_out
    no_python = judge(CommandResult(127, "", "sh: 1: python: not found\n", 0.1, False), "", None, **KW)
    assert no_python.status == "blocked" and "python" in no_python.blocker


def test_judge_reads_the_report_never_the_log():
    # The test failed and something printed pass lines: the report decides.
    out = ("t.py::test_a FAILED\n========== 1 failed in 0.01s ==========\n========== 1 passed in 0.01s ==========\n")
    assert judge(CommandResult(1, out, "", 1.0, False), out, JUNIT_FAIL, **KW).status == "debug_red"
    # FastVideo's logger under -s on a machine without CUDA: an ERROR line is not a test status.
    noisy = ("t.py::test_a ERROR 12-03 10:00:00 platforms.py:12] NPU detection failed: no module\n"
             "ERROR 12-03 10:00:00 [__init__.py:41] NPU detection failed\nPASSED\n"
             "========== 1 passed in 0.01s ==========\n")
    assert judge(CommandResult(0, noisy, "", 1.0, False), noisy, JUNIT_PASS, **KW).status == "non_skip_pass"


def test_missing_asset_rules():
    assert missing_asset("FileNotFoundError: [Errno 2] No such file or directory: '/w/vae/config.json'") \
        == "missing file: /w/vae/config.json"
    assert missing_asset("No such file or directory: 'weights/part'") == "missing file: weights/part"
    assert missing_asset("FileNotFoundError: [Errno 2] No such file or directory: 'src/helper.py'") is None
    # safetensors and torch name the path bare at the end of the line
    assert missing_asset("E   FileNotFoundError: No such file or directory: /official/weights/vae.safetensors\nnext") \
        == "missing file: /official/weights/vae.safetensors"
    assert missing_asset("FileNotFoundError: No such file or directory: fastvideo/models/x.py") is None
    assert missing_asset("ModuleNotFoundError: No module named 'einops'") is not None
    assert missing_asset("ModuleNotFoundError: No module named 'fastvideo.models.x'") is None
    assert missing_asset("AssertionError: Torch not compiled with CUDA enabled") == \
        "needs a GPU: Torch not compiled with CUDA enabled"
    assert missing_asset("AssertionError: max_abs too large") is None


def test_parse_metrics_reads_key_value_numbers_only():
    out = ("platform linux -- Python 3.11.2, pytest-8.3.4\nrootdir: /workspace\n"
           "t.py::test_a max_abs=1.2e-3 mean_abs=.5 name=vae psnr = 42 ratio=-inf\n"
           "========== FAILURES ==========\n    x = 0.5\n")
    assert parse_metrics(out) == {"max_abs": 1.2e-3, "mean_abs": 0.5, "psnr": 42.0, "ratio": float("-inf")}


# ----- through the real sandboxes ----------------------------------------------------------


@pytest.mark.docker
def test_runner_through_docker(ws, sandbox_image, tmp_path):
    ex = make_executor("docker", ws, image=sandbox_image, memory="2g")
    ex.start()
    try:
        run = run_case(ex, ws, "pass_metrics", tmp_path)
        assert run.status == "non_skip_pass" and run.metrics["max_abs"] == 1.5e-4
        assert run_case(ex, ws, "fail", tmp_path).status == "debug_red"
        assert run_case(ex, ws, "skip_in_test", tmp_path).status == "scaffold_skip"
        timed = run_case(ex, ws, "timeout", tmp_path, timeout_s=4)
        assert timed.timed_out and timed.status == "debug_red"
        ps = ex.run("ps -eo stat=,args=", timeout_s=30).stdout
        assert not [ln for ln in ps.splitlines() if "sleep 450" in ln and not ln.startswith("Z")]
        assert not ex.run("ls /tmp/fastvideo-harness-junit-* 2>/dev/null", timeout_s=30).stdout
        assert not list(ws.path.rglob("*.xml"))
    finally:
        ex.close()


@pytest.mark.docker
def test_runner_blocked_when_the_image_has_no_python(ws, docker_client, sandbox_image, tmp_path):
    # The bare Debian base of the test image has python3 but neither `python` nor pytest.
    base = "fastvideo-harness-sandbox-base:bookworm"
    import docker.errors

    try:
        docker_client.images.get(base)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{base} is built together with {sandbox_image}; rebuild with scripts/build-sandbox-image.sh")
    ex = make_executor("docker", ws, image=base, memory="512m")
    ex.start()
    try:
        run = run_case(ex, ws, "pass_metrics", tmp_path)
        assert run.status == "blocked" and "python is not on the sandbox's PATH (exit 127" in run.blocker
    finally:
        ex.close()


@pytest.mark.bwrap
def test_runner_through_bwrap(ws, bwrap_ok, tmp_path):
    ex = make_executor("bwrap", ws)
    run = run_case(ex, ws, "pass_metrics", tmp_path)
    assert run.status == "non_skip_pass" and run.passed == 1
    assert run_case(ex, ws, "mixed", tmp_path).status == "scaffold_skip"
    assert run_case(ex, ws, "missing_weights", tmp_path).status == "blocked"
    assert not list(ws.path.rglob("*.xml"))


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("bwrap", marks=pytest.mark.bwrap)])
def sandbox_kind(request):
    if request.param == "docker":
        return "docker", {"image": request.getfixturevalue("sandbox_image"), "memory": "2g"}
    request.getfixturevalue("bwrap_ok")
    return "bwrap", {}


def test_a_whole_run_leaves_a_dirty_user_checkout_byte_identical(user_repo, harness_root, tmp_path, sandbox_kind):
    from tests.sandbox_fixtures import git, tree_digest

    (user_repo / "README.md").write_text("# my uncommitted notes\n")
    (user_repo / "notes.txt").write_text("untracked\n")
    before, status = tree_digest(user_repo), git(user_repo, "status", "--porcelain")
    ws = Workspace.create(user_repo, "whole-run", root=harness_root)
    kind, options = sandbox_kind
    ex = make_executor(kind, ws, **options)
    ex.start()
    try:
        ex.run("echo 'scale = 0.13025' >> fastvideo/models/vaes/toyvae.py; rm README.md; mkdir -p out; "
               "echo x > out/y", timeout_s=60)
        run = run_parity_test(ex, "tests/local_tests/vaes/test_toy_vae_parity.py", tmp_path / "logs")
        assert run.status == "non_skip_pass", run.first_failure
        assert ws.checkpoint("agent step") is not None
    finally:
        ex.close()
    assert ws.files_changed() == ["README.md", "fastvideo/models/vaes/toyvae.py", "out/y"]
    ws.remove()
    assert tree_digest(user_repo) == before
    assert git(user_repo, "status", "--porcelain") == status
