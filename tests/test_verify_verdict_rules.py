"""The verdict's pure rules: the allowed paths, the port's packages, and how the trusted
process's records decide a run."""

from __future__ import annotations

from pathlib import Path

from harness.sandbox.executors.base import CommandResult
from harness.sandbox.pytest_runner import ParityRun
from harness.verify.allowed import allowed_paths, why_blocking
from harness.verify.verdict import comparison_figures, judge_records, port_packages

PACKET = {
    "mode": "parity-debug", "model_family": "tinyvid",
    "fastvideo_target_files": ["fastvideo/models/vaes/tinyvid.py", "fastvideo/configs/models/vaes/tinyvid.py::Cfg"],
    "local_tests_readme": "tests/local_tests/tinyvid/README.md",
    "port_state_file": "tests/local_tests/tinyvid/PORT_STATUS.md",
    "parity_test": "tests/local_tests/vaes/test_tinyvid_vae_parity.py",
    "prototype_key_dumps": {"official": "converted_weights/tinyvid/_mapping/vae_official_keys.json",
                            "fastvideo": "planned"},
}
ID = "tests/local_tests/vaes/test_tinyvid_vae_parity.py::test_tinyvid_vae_parity"
PASSED = ParityRun(status="non_skip_pass", parity_test=PACKET["parity_test"], command="pytest", exit_code=0,
                   timed_out=False, duration_s=1.0, passed=1, log_path="x.log", started_at="now")
CLOSE = {"fn": "assert_close", "where": "t.py:9", "label": "decode", "asserting": True, "passed": True,
         "shape": [1, 3], "dtype": "float32", "max_abs": 0.0, "max_rel": 0.0, "atol": 1e-4, "rtol": 1e-4}


def clean_records(**test: object) -> list[dict]:
    records: list[dict] = [{"k": "collected", "ids": [ID]}]
    records += [{"k": "report", "id": ID, "when": w, "outcome": "passed", "wasxfail": False}
                for w in ("setup", "call", "teardown")]
    records.append({"k": "test", "id": ID, "comparisons": [CLOSE], "limits": [], "rng_used": True,
                    "port_calls": 7, **test})
    return records + [{"k": "finish", "exitstatus": 0, "port": None}]


def test_allowed_paths_are_the_targets_their_buckets_and_the_state_files():
    allowed = allowed_paths(PACKET)
    for rel in ("fastvideo/models/vaes/tinyvid.py", "fastvideo/models/vaes/helper.py",
                "fastvideo/configs/models/vaes/__init__.py", "tests/local_tests/tinyvid/PORT_STATUS.md",
                "tests/local_tests/tinyvid/README.md", "converted_weights/tinyvid/_mapping/vae_official_keys.json"):
        assert allowed.allows(rel), rel
    for rel in ("fastvideo/models/encoders/x.py", "fastvideo/models/loader.py", "tests/local_tests/vaes/__init__.py",
                "pytest.py", "converted_weights/tinyvid/vae/model.safetensors", PACKET["parity_test"]):
        assert not allowed.allows(rel), rel


def test_what_outside_the_allowed_paths_blocks():
    for rel in ("pytest.py", "torch/__init__.py", "x/__pycache__/m.cpython-311.pyc", "a-1.0.dist-info/entry_points.txt",
                ".gitignore", "tests/.gitattributes", "tests/conftest.py", "pytest.ini", "site.pth", "ext.so"):
        assert why_blocking(rel), rel
    assert why_blocking("notes/link", "symlink") and why_blocking("pipe", "other")
    assert why_blocking("notes.txt") is None and why_blocking("pyproject.toml") is None


def test_the_port_packages_are_the_packages_of_its_allowed_paths(tmp_path: Path):
    for pkg in ("fastvideo", "tests"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    assert port_packages(PACKET, tmp_path) == ["fastvideo"]


def test_clean_records_keep_the_pass_and_carry_the_measured_figures():
    run, problems = judge_records(PASSED, clean_records(), None)
    assert run.status == "non_skip_pass" and problems == []
    assert run.metrics["decode.max_abs"] == 0.0
    assert run.comparison_lines[0].startswith("decode: assert_close passed")
    assert any("secret" in note for note in run.evidence) and any("7 calls" in note for note in run.evidence)


def test_every_record_that_contradicts_a_pass_refuses_it():
    failing = {**CLOSE, "passed": False, "max_abs": 0.62, "error": "Tensor-likes are not close!"}
    cases = {
        "a swallowed failed comparison": clean_records(comparisons=[failing]),
        "no final record": clean_records()[:-1],
        "a failing session": clean_records()[:-1] + [{"k": "finish", "exitstatus": 1}],
        "an xfail": [{**r, "wasxfail": True} if r.get("k") == "report" else r for r in clean_records()],
        "a failed phase": [{**r, "outcome": "failed"} if r.get("when") == "teardown" else r for r in clean_records()],
        "no test record": [r for r in clean_records() if r.get("k") != "test"],
    }
    for what, records in cases.items():
        run, problems = judge_records(PASSED, records, None)
        assert problems, what


def test_a_failed_comparison_is_listed_first():
    failing = {**CLOSE, "label": "encode", "passed": False, "max_abs": 0.62, "max_rel": 3.0}
    metrics, lines = comparison_figures([CLOSE, failing])
    assert lines[0].startswith("encode: assert_close FAILED") and "max_abs=6.200e-01" in lines[0]
    assert metrics["encode.max_abs"] == 0.62


def test_an_isolation_limit_blocks_whatever_pytest_said():
    limit = {"what": "bool() of a port object", "remedy": "work with values", "where": "t.py:12", "test": ID}
    for status in ("non_skip_pass", "debug_red"):
        run, problems = judge_records(PASSED.model_copy(update={"status": status}), clean_records(limits=[limit]), None)
        assert run.status == "blocked" and "bool() of a port object at t.py:12" in run.blocker, status
        assert problems


def test_a_port_that_never_started_blocks_and_one_that_died_is_red():
    port = CommandResult(1, "", "ImportError: libfoo.so: cannot open shared object file", 2.0, False)
    records = clean_records()[:-1] + [{"k": "finish", "exitstatus": 1,
                                        "port": "the port process did not connect within 300s (timed out)"}]
    run, _ = judge_records(PASSED.model_copy(update={"status": "debug_red"}), records, port)
    assert run.status == "blocked" and "libfoo.so" in run.blocker
    records[-1]["port"] = "lost the port process during call: the other side closed the channel"
    run, _ = judge_records(PASSED.model_copy(update={"status": "debug_red"}), records, port)
    assert run.status == "debug_red"


def test_fixed_inputs_are_named_as_weaker_evidence():
    run, _ = judge_records(PASSED, clean_records(rng_used=False, comparisons=[]), None)
    assert any("fixed" in note and "weaker" in note for note in run.evidence)
    assert any("saw no comparison" in note for note in run.evidence)
