"""The task message each agent node hands its agent: what to do now and what happened so far.

Said once per role: the packet and the skill are in the system prompt (never repeated here),
`finish`'s fields in its tool schema, the budget is added by the agent loop. What the task
carries is what changes during a run: the plan or a cut planner's record, what every earlier
role reported, the decisions people made, the open concerns, the converted config's key map,
and for the debugger the harness's last parity result.
"""

from __future__ import annotations

import json
from typing import Any

from harness.agents.concerns import render_open
from harness.agents.memory import RunMemory
from harness.agents.prompts import system_for
from harness.agents.tools import parity_report
from harness.contracts import ComponentContext
from harness.graph.nodes.common import parity_from_dict
from harness.graph.state import RunState

ROLE_FOR_NODE = {"plan": "planner", "implement": "implementer", "debug": "debugger"}


def system_prompt(role: str, skill: Any, packet: dict[str, Any], environment: str = "", *,
                  parity_test_exists: bool = True) -> Any:
    """Role prompt, where things are, skill text and packet: the stable (cacheable) part of every call."""
    return system_for(role, skill.text_for_agents(parity_test_exists=parity_test_exists), packet_text(packet),
                      environment)


def packet_text(packet: dict[str, Any]) -> str:
    """The packet in the contract's own text form (the skill's component_context.md describes it)."""
    try:
        return ComponentContext.model_validate(packet).to_text()
    except ValueError:  # an older state's packet that no longer validates: shown as JSON
        return json.dumps(packet, indent=1)


def _memory_block(state: RunState) -> str:
    text = RunMemory.from_state(dict(state)).render()
    return f"What the earlier roles reported (their own words; the harness checks them):\n{text}" if text else ""


def decisions_block(state: RunState) -> str:
    """Every escape hatch a person answered: the question, the chosen option, any free text."""
    lines = []
    for hatch in state.get("accepted_hatches") or []:
        answer = hatch.get("answer") or {}
        chosen = (f"option {answer['option']}: {answer.get('text', '')}" if answer.get("option")
                  else f"free text: {answer.get('text', '')}")
        asked = hatch.get("id") or "a question"
        lines.append(f"- {asked} ({hatch.get('decision_type')}): {hatch.get('question')}\n  answered {chosen}")
    if not lines:
        return ""
    return "Decisions a person made (escape hatches answered; follow them):\n" + "\n".join(lines)


def _concerns_block(state: RunState) -> str:
    return render_open(list(state.get("concerns") or []), dict(state.get("resolved_concerns") or {}))


def _plan_block(state: RunState) -> str:
    plan = (state.get("plan") or {}).get("plan")
    if state.get("plan") is None:
        return ("The planner did not finish, so there is no plan: work from the packet, the skill and what the "
                "planner reported below.")
    shown = {k: v for k, v in (plan or {}).items() if v not in (None, [], {}, "")}
    return "Plan:\n```json\n" + json.dumps(shown, indent=1) + "\n```" if shown else "The plan is empty: work from the packet and the skill."


def _join(*blocks: str) -> str:
    return "\n\n".join(b.strip("\n") for b in blocks if b and b.strip())


def plan_task(state: RunState) -> str:
    packet = state.get("packet") or {}
    return _join(
        f"Plan the {packet.get('mode')} work for component `{packet.get('component')}` "
        f"({packet.get('component_type')}) of `{packet.get('model_family')}`; the packet is in your "
        "instructions.",
        "Read the official definition and instantiation files and the FastVideo targets. Decide reuse vs "
        "port with evidence, list the target files, the ordered steps and your concerns.",
        decisions_block(state),
    )


def implement_task(state: RunState, *, config_map: str = "", carried: str = "") -> str:
    packet = state.get("packet") or {}
    mode = packet.get("mode")
    extra = (
        "Prototype mode: make the component import and instantiate with the official args, "
        "and write the official and FastVideo state-dict key/shape dumps to the paths in "
        "prototype_key_dumps. Do not chase numerical parity."
        if mode == "prototype"
        else "Parity-debug mode: implement the component so the parity test passes without skips."
    )
    return _join(
        f"Implement component `{packet.get('component')}` following the plan.\n\n{extra}\n"
        f"If the parity test `{packet.get('parity_test')}` is missing, scaffold it from the skill's template first.",
        _plan_block(state),
        _memory_block(state),
        carried,
        decisions_block(state),
        config_map,
        _concerns_block(state),
    )


def reuse_note(state: RunState) -> str:
    parity = state.get("last_parity") or {}
    if not parity.get("reused"):
        return ""
    return (f"The harness did not run the parity test again: {parity['reused']}. The result below is that "
            "earlier run's. Change what the test can see (component code, config, export) before expecting "
            "another result.")


def debug_task(state: RunState, drift_checklist: tuple[str, ...] | list[str], *, config_map: str = "") -> str:
    packet = state.get("packet") or {}
    parity = state.get("last_parity") or {}
    run = parity_from_dict(parity)
    findings = state.get("guard_findings") or []
    guards = ""
    if findings:
        guards = "\n".join(["The harness's guards flagged your changes; fix these first (revert the change, "
                            "or ask a person if it truly is a user decision):"]
                           + [f"- [{f.get('name')}] {f.get('path')}: {f.get('detail')}" for f in findings])
    memory = _memory_block(state)
    return _join(
        f"Debug round {int(state.get('debug_rounds') or 0) + 1}: the parity test "
        f"`{packet.get('parity_test')}` is not a clean non-skip pass yet.",
        reuse_note(state),
        "The harness's last parity run:\n" + (parity_report(run) if run is not None else "not run"),
        guards,
        memory + "\nDo not repeat what the earlier rounds already tried." if memory else "",
        decisions_block(state),
        config_map,
        _concerns_block(state),
        "Drift checklist for this bucket (check these before changing layers):\n"
        + "\n".join(f"- {item}" for item in drift_checklist),
        "Fix component code (model, config, export). Find the first divergent tensor, fix it, and run the parity test.",
    )
