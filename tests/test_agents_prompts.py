"""The role prompts say what each role must and must not do."""

from __future__ import annotations

import pytest

from harness.agents.models.base import SystemBlock
from harness.agents.prompts import role_prompt, system_for


@pytest.mark.parametrize("role", ["planner", "implementer", "debugger"])
def test_every_role_knows_the_boundaries(role):
    text = role_prompt(role)
    for needed in ("Never weaken the parity test", "scripts/checkpoint_conversion/", "converted_weights/<family>/_mapping/",
                   "raise_escape_hatch", "finish", "HF_TOKEN"):
        assert needed in text, needed


def test_role_specific_duties():
    assert "reuse vs port" in role_prompt("planner") and "EntryClass" in role_prompt("planner")
    assert "You only read" in role_prompt("planner")
    impl = role_prompt("implementer")
    assert "EntryClass" in impl and "__init__.py" in impl and "state_dict" in impl and "key dump" in impl
    # The key dump format, and that a matching dump already in the checkout is accepted unchanged.
    assert "JSON object of state_dict key -> shape" in impl and "accepted unchanged" in impl
    # Which PORT_STATUS.md rows and cells the harness writes, and that it never rewrites silently.
    for duty in (impl, role_prompt("debugger")):
        assert "Component Matrix row" in duty and "Parity Commands row" in duty and "kept in\n  Handoff Notes" in duty
    dbg = role_prompt("debugger")
    assert "FIRST divergent" in dbg and "conversion_retry_request" in dbg and "non-skip PASS" in dbg
    with pytest.raises(ValueError, match="unknown role"):
        role_prompt("reviewer")


def test_system_blocks_are_stable_and_ordered():
    blocks = system_for("debugger", "SKILL TEXT", '{"component": "vae"}')
    assert all(isinstance(b, SystemBlock) and b.stable for b in blocks)
    assert "PARITY-DEBUGGER" in blocks[0].text and "SKILL TEXT" in blocks[1].text and '"vae"' in blocks[2].text
    assert len(system_for("planner")) == 1
