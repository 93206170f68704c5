"""The clean-room verdict's pure rules: the allowed paths, the record stream, the fingerprint."""

from __future__ import annotations

import copy

from harness.verify.allowed import allowed_paths, why_blocking
from harness.verify.verdict import defined_test_names, fingerprint_problems, record_problems

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


def clean_records() -> list[dict]:
    records = [{"k": "start"}, {"k": "collected", "ids": [ID]}]
    for when in ("setup", "call", "teardown"):
        records.append({"k": "phase", "id": ID, "when": when, "raised": None, "outcome": "passed"})
        records.append({"k": "report", "id": ID, "when": when, "outcome": "passed", "wasxfail": False})
    return records + [{"k": "official", "modules": {}}, {"k": "finish", "exitstatus": 0}, {"k": "end"}]


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


def test_a_clean_stream_passes_and_every_forgery_does_not():
    assert record_problems(clean_records(), {"test_tinyvid_vae_parity"}) == []
    cases = {
        "a failed call plus a forged pass": lambda r: r.insert(5, {"k": "report", "id": ID, "when": "call",
                                                                   "outcome": "failed"}),
        "a duplicate pass": lambda r: r.insert(5, dict(r[5])),
        "no finish": lambda r: r.remove({"k": "finish", "exitstatus": 0}),
        "a second finish": lambda r: r.append({"k": "finish", "exitstatus": 0}),
        "a failing session": lambda r: r.__setitem__(-2, {"k": "finish", "exitstatus": 1}),
        "a violation": lambda r: r.insert(3, {"k": "violation", "what": "torch.allclose was replaced"}),
        "a phase that raised": lambda r: r[4].update(raised="AssertionError"),
        "an xfail": lambda r: r[5].update(wasxfail=True),
        "a pipe left open": lambda r: r.append({"k": "open_writer"}),
        "garbage": lambda r: r.append({"k": "garbage", "text": "1 passed"}),
        "a report for an uncollected test": lambda r: r.insert(5, {"k": "report", "id": "other", "when": "call",
                                                                   "outcome": "passed"}),
        "a collection error": lambda r: r.append({"k": "collect_error", "id": "x"}),
    }
    for what, forge in cases.items():
        records = copy.deepcopy(clean_records())
        forge(records)
        assert record_problems(records, {"test_tinyvid_vae_parity"}), what
    # A test the file defines that was never collected (deselected, hidden) is no pass either.
    assert record_problems(clean_records(), {"test_tinyvid_vae_parity", "test_other"})


def test_test_names_and_fingerprints():
    src = "def test_a():\n    pass\n\nclass TestB:\n    def test_c(self):\n        pass\n\ndef helper():\n    pass\n"
    assert defined_test_names(src) == {"test_a", "TestB::test_c"}
    same = {"m": {"f": "fn:1", "C.g": "fn:2"}}
    assert fingerprint_problems(same, {"modules": copy.deepcopy(same)}) == []
    assert fingerprint_problems({"m": {"f": "fn:1", "C.g": "fn:9"}}, {"modules": same})
    assert fingerprint_problems(same, {"error": "m: ImportError"})
