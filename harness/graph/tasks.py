"""The task message each agent node hands its agent: packet, skill, and what happened so far."""

from __future__ import annotations

import json
from typing import Any

from harness.graph.state import RunState

ROLE_FOR_NODE = {"plan": "planner", "implement": "implementer", "debug": "debugger"}


def system_prompt(role: str, skill: Any, packet: dict[str, Any], environment: str = "") -> Any:
    """Role prompt, where things are, skill text and packet: the stable (cacheable) part of every call."""
    from harness.agents.prompts import system_for

    return system_for(role, skill.text, json.dumps(packet, indent=2), environment)


def _memory_block(state: RunState) -> str:
    from harness.agents.memory import RunMemory

    text = RunMemory.from_state(dict(state)).render()
    return f"What the earlier roles reported (their own words; the harness checks them):\n{text}\n\n" if text else ""


def _finish_block(role: str) -> str:
    from harness.agents.finish import finish_fields_text

    return "When done, " + finish_fields_text(role)


def _packet_block(state: RunState) -> str:
    return "```json\n" + json.dumps(state.get("packet") or {}, indent=2) + "\n```"


def plan_task(state: RunState) -> str:
    packet = state.get("packet") or {}
    return (
        f"Plan the {packet.get('mode')} work for component `{packet.get('component')}` "
        f"({packet.get('component_type')}) of `{packet.get('model_family')}`.\n\n"
        "Read the official definition and instantiation files and the FastVideo targets. "
        "Decide reuse vs port with evidence, list the target files, the ordered steps and "
        "your concerns.\n\n"
        f"{_finish_block('planner')}\n\n"
        f"Packet:\n{_packet_block(state)}"
    )


def implement_task(state: RunState) -> str:
    packet = state.get("packet") or {}
    mode = packet.get("mode")
    extra = (
        "Prototype mode: make the component import and instantiate with the official args, "
        "and write the official and FastVideo state-dict key/shape dumps to the paths in "
        "prototype_key_dumps. Do not chase numerical parity."
        if mode == "prototype"
        else "Parity-debug mode: implement the component so the parity test passes without skips."
    )
    return (
        f"Implement component `{packet.get('component')}` following the plan.\n\n{extra}\n"
        f"If the parity test `{packet.get('parity_test')}` is missing, scaffold it from the "
        "skill's template first.\n\n"
        f"Plan:\n```json\n{json.dumps(state.get('plan') or {}, indent=2)}\n```\n\n"
        f"{_memory_block(state)}"
        f"{_finish_block('implementer')}\n\n"
        f"Packet:\n{_packet_block(state)}"
    )


def debug_task(state: RunState, drift_checklist: tuple[str, ...] | list[str]) -> str:
    from harness.agents.tools import parity_report
    from harness.graph.nodes import parity_from_dict

    packet = state.get("packet") or {}
    parity = state.get("last_parity") or {}
    lines = [
        f"Debug round {int(state.get('debug_rounds') or 0) + 1}: the parity test "
        f"`{packet.get('parity_test')}` is not a clean non-skip pass yet.",
        "",
        "The harness's last parity run:",
    ]
    run = parity_from_dict(parity)
    lines.append(parity_report(run) if run is not None else "not run")
    findings = state.get("guard_findings") or []
    if findings:
        lines += ["", "The harness's guards flagged your changes; fix these first (revert the change, "
                  "or ask a person if it truly is a user decision):"]
        lines += [f"- [{f.get('name')}] {f.get('path')}: {f.get('detail')}" for f in findings]
    memory = _memory_block(state)
    if memory:
        lines += ["", memory.rstrip(), "Do not repeat what the earlier rounds already tried."]
    lines += ["", "Drift checklist for this bucket (check these before changing layers):"]
    lines += [f"- {item}" for item in drift_checklist]
    lines += [
        "",
        "Fix component code (model, config, export). Find the first divergent tensor, fix it, "
        "and run the parity test.",
        "",
        _finish_block("debugger"),
    ]
    return "\n".join(lines)
