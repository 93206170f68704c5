"""The static reading of parity tests, case by case (no repository needed)."""

from __future__ import annotations

import pytest

from harness.verify.guard_parity_test import check_new_parity_test, compare_parity_tests, read_parity_test

BASE = '''"""Coverage scope: both."""
import pytest
import torch

TOLS = {"atol": 1e-5, "rtol": 1e-4}


def _load():
    return torch.ones(3)


def test_parity():
    ref = _load()
    out = _load()
    torch.testing.assert_close(out, ref, **TOLS)
    assert float((out - ref).abs().max()) == pytest.approx(0.0, abs=1e-6)
'''


def kinds(new: str) -> list[str]:
    return [w.kind for w in compare_parity_tests(BASE, new)]


def test_unchanged_and_reformatted_are_clean() -> None:
    assert kinds(BASE) == []
    assert kinds(BASE.replace("    ref = _load()\n", "    ref = _load()  # official side\n")) == []


@pytest.mark.parametrize(
    ("old", "new", "kind"),
    [
        ('"atol": 1e-5', '"atol": 1e-3', "tolerance_loosened"),
        ("abs=1e-6", "abs=1e-1", "tolerance_loosened"),
        ("def test_parity", "@pytest.mark.skipif('1', reason='x')\ndef test_parity", "skip_added"),
        ("    ref = _load()\n", "    with torch.no_grad():\n        pytest.skip('slow')\n    ref = _load()\n", "skip_added"),
        ("def test_parity", "def _disabled_parity", "tests_removed"),
        ("    torch.testing.assert_close(out, ref, **TOLS)\n", "", "assertions_removed"),
        ("    torch.testing.assert_close(out, ref, **TOLS)\n", "    assert out.shape == ref.shape\n", "shape_only"),
        ("    torch.testing.assert_close(out, ref, **TOLS)\n", "    assert True\n", "assertions_removed"),
        ("    ref = _load()\n", "    while False:\n        pass\n    ref = _load()\n", "dead_code"),
        ("def test_parity():", "def test_parity(:", "unparseable"),
    ],
)
def test_weakenings(old: str, new: str, kind: str) -> None:
    assert old in BASE
    assert kind in kinds(BASE.replace(old, new, 1))


def test_conditional_skips_are_not_weakenings() -> None:
    guarded = BASE.replace(
        "import torch\n",
        "import torch\ntry:\n    import official_vae\nexcept ImportError:\n    pytest.skip('no official code', allow_module_level=True)\n",
    ).replace("    ref = _load()\n", "    if not torch.cuda.is_available():\n        pytest.skip('needs CUDA')\n    ref = _load()\n")
    assert kinds(guarded) == []


def test_more_tolerance_values_do_not_hide_a_loosened_one() -> None:
    base = "def test_a():\n    f(x, atol=1e-3)\n    f(y, atol=1e-5)\n"
    assert [w.detail for w in compare_parity_tests(base, base.replace("1e-5", "1e-3"))] == ["atol 1e-05 -> 0.001"]


def test_removed_explicit_tolerance_is_flagged() -> None:
    base = "def test_a():\n    torch.testing.assert_close(a, b, atol=1e-7, rtol=0)\n"
    found = compare_parity_tests(base, "def test_a():\n    torch.testing.assert_close(a, b)\n")
    assert {w.kind for w in found} == {"tolerance_loosened"}


def test_unrelated_names_are_not_tolerances() -> None:
    facts = read_parity_test("steps = 50\nlayer_norm_eps = 1e-6\nnum_inference_steps = 4\n")
    assert facts.tolerances == {}


def test_class_skip_marker_is_seen() -> None:
    facts = read_parity_test("import unittest\n\n@unittest.skip('x')\nclass TestParity:\n    def test_a(self):\n        assert 1 == 1\n")
    assert facts.unconditional_skips == ["@unittest.skip on class TestParity"]


def test_new_test_requirements() -> None:
    assert check_new_parity_test(BASE) == []
    found = {w.kind for w in check_new_parity_test("def test_a():\n    pytest.skip('todo')\n")}
    assert found == {"shape_only", "skip_added", "no_coverage_scope"}
    assert {w.kind for w in check_new_parity_test("X = 1\n")} >= {"no_tests"}
