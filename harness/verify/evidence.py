"""The handoff is built from evidence, never from what an agent says.

Evidence is: the git diff of the run's branch, the parity run the harness itself executed
(only while no input to the test changed since), the guard findings, the prototype probe,
and the packet. `build_handoff` turns that into a `ComponentSkillHandoff` that always
validates; `update_port_status` and friends keep PORT_STATUS.md and the local tests README
in step with it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Iterable

from harness.contracts import ComponentSkillHandoff, ConversionRetryRequest, EscapeHatch, HandoffKeyDumps, find_secret
from harness.verify.evidence_conversion import classify_conversion_failure
from harness.verify.conversion_state import conversion_state
from harness.verify.environment import ENVIRONMENT_PREFIX, environment_problem
from harness.verify.evidence_git import changed_since
from harness.verify.evidence_port_status import record_escape_hatch, resolve_escape_hatch, update_port_status
from harness.verify.evidence_prototype import PrototypeEvidence, prototype_evidence
from harness.verify.guard_files import is_conversion_path
from harness.verify.guards import GuardFinding

__all__ = [
    "PrototypeEvidence",
    "build_handoff",
    "changed_since_parity",
    "clean_text",
    "classify_conversion_failure",
    "parity_is_current",
    "prototype_evidence",
    "record_escape_hatch",
    "resolve_escape_hatch",
    "update_port_status",
]


def changed_since_parity(workspace: Any, parity_commit: str | None) -> list[str] | None:
    """Files that can affect the parity test and changed since the harness ran it, or None
    when there is no such run (unknown commit)."""
    if not parity_commit:
        return None
    changed = changed_since(workspace, parity_commit)
    if changed is None:
        return None
    return [rel for rel in changed if not _is_state_file(rel)]


def _is_state_file(rel: str) -> bool:
    """PORT_STATUS.md and the local tests README: rewritten by the harness after a run,
    they cannot change the test's result."""
    path = PurePosixPath(rel)
    in_local_tests = len(path.parts) == 4 and path.parts[:2] == ("tests", "local_tests")
    return in_local_tests and path.name in ("PORT_STATUS.md", "README.md")


def parity_is_current(workspace: Any, parity_commit: str) -> bool:
    """True when nothing that can affect the test changed since the commit at which the
    harness last ran it (PORT_STATUS.md and the local tests README do not count)."""
    changed = changed_since_parity(workspace, parity_commit)
    return changed is not None and not changed


# ---- handoff ---------------------------------------------------------------------------

def clean_text(text: str) -> str:
    """Never let a secret value reach the handoff; never leave a field empty."""
    text = " ".join(str(text).split()) or "none"
    return "(removed: looked like a secret value)" if find_secret(text) else text


def _unique(items: Iterable[str]) -> list[str]:
    """Items in order, each once: the same text with other spacing, case or a final period is
    the same concern."""
    seen: dict[str, str] = {}
    for item in items:
        if not item or item.strip().lower() == "none":
            continue
        seen.setdefault(" ".join(item.split()).lower().rstrip("."), item)
    return list(seen.values())


def _official_files(packet: Any) -> list[str]:
    return _unique([f.path for f in packet.official_definition_files] + [f.path for f in packet.official_instantiation_files])


def _pytest_output(run: Any | None, current: bool) -> str:
    if run is None:
        return "not_run"
    # The contract's command; the exact invocation (report flags, temp paths) stays in the run's log.
    line = f"pytest {run.parity_test} -v -s: {run.summary_line()}"
    return line if current else f"{line} (stale: inputs changed after this run)"


def _loader_strictness(packet: Any, concerns: list[str]) -> str:
    value = packet.conversion.production_loader_strictness
    if value == "unknown":
        concerns.append("production_loader_strictness is unknown in the packet; reported as strict")
        return "strict"
    return value


_SCOPE = re.compile(r"""(?:PARITY_SCOPE\s*=\s*|coverage[ _]scope\s*[:=]\s*)["']?(production_loader|implementation_subcomponent|both)\b""",
                    re.IGNORECASE)


def coverage_scope(workspace: Any, packet: Any) -> str | None:
    """The parity test's declared coverage scope (`PARITY_SCOPE = "..."` or `Coverage scope: ...`), from the test as the
    verdict runs it: the base commit's version when there is one, else the worktree's."""
    text = workspace.file_at_base(packet.parity_test) if hasattr(workspace, "file_at_base") else None
    if text is None:
        path = workspace.path / packet.parity_test
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    m = _SCOPE.search(text)
    return m.group(1).lower() if m else None


def _strict_load(run_status: str | None, strictness: str, retry: Any, scope: str | None, run: Any | None) -> str:
    if retry is not None:
        return "blocked"
    failure = str(getattr(run, "first_failure", "") or "") if run is not None else ""
    if "Error(s) in loading state_dict" in failure:
        return "blocked"
    # A strict load is proven only by a passing test that loads the converted weights through
    # the production loader, in any mode; a test of a directly built class proves nothing about it.
    if run_status == "non_skip_pass" and strictness != "stateless" and scope in ("production_loader", "both"):
        return "pass_with_documented_exclusions" if strictness == "non_strict_with_allowed_keys" else "pass"
    return "not_run"


def _key_dumps(packet: Any, mode: str, prototype: PrototypeEvidence | None) -> HandoffKeyDumps | str:
    if mode != "prototype":
        return "none"  # key dumps are the prototype's artifact; parity-debug does not report them
    dumps = packet.prototype_key_dumps
    paths = (dumps.official, dumps.fastvideo)
    if any(p in ("planned", "unknown") for p in paths):
        return "none"
    if mode == "prototype" and not (prototype and prototype.official_dump and prototype.fastvideo_dump):
        return "none"  # a prototype reports only the dumps the harness found valid
    return HandoffKeyDumps(official=paths[0], fastvideo=paths[1])


def _finding_line(f: GuardFinding) -> str:
    return f"guard {f.name} in {f.path}: {f.detail}"


def _with_hatch_row(workspace: Any, packet: Any, hatch: EscapeHatch) -> EscapeHatch:
    """`next_step=ask_user` needs a PORT_STATUS row linked from the evidence (E###)."""
    row = record_escape_hatch(workspace, packet, hatch)
    if row in hatch.state_snapshot.evidence:
        return hatch
    snapshot = hatch.state_snapshot.model_copy(update={"evidence": f"{row}: {hatch.state_snapshot.evidence}"})
    return hatch.model_copy(update={"state_snapshot": snapshot})


WEAK_EVIDENCE = ("weaker", "agent's own test", "saw no comparison")


def build_handoff(
    *,
    packet: Any,
    workspace: Any,
    mode: str,
    last_parity: Any | None,
    parity_current: bool,
    concerns: list[str],
    findings: list[GuardFinding],
    escape_hatch: EscapeHatch | None,
    retry_request: ConversionRetryRequest | None,
    prototype: PrototypeEvidence | None,
    budget_blocker: str | None,
) -> ComponentSkillHandoff:
    mode = "prototype" if mode in ("prototype", "parity-scaffold") else "parity-debug"
    changed = workspace.files_changed()
    conversion_edits = [p for p in changed if is_conversion_path(p) and "/_mapping/" not in p]
    blocking = [f for f in findings if f.blocking]
    # Hard stops: blocking guard findings, and conversion edits seen in the diff itself
    # (even when the caller passed no findings).
    stops = [_finding_line(f) for f in blocking]
    if conversion_edits and not any(f.name == "conversion_edit" for f in blocking):
        stops.append(f"conversion-owned files were edited: {', '.join(conversion_edits)}")
    # The packet's own concerns_or_unknowns are the instructions the run started from, not what it found.
    given = [" ".join(c.split()).lower().rstrip(".") for c in packet.concerns_or_unknowns]
    all_concerns = _unique([c for c in concerns if " ".join(c.split()).lower().rstrip(".") not in given])
    all_concerns += [f"recorded: {_finding_line(f)}" for f in findings if not f.blocking]
    # Where the verdict's evidence is weaker than an isolated, secret-seeded comparison, the handoff says so.
    all_concerns += [f"parity evidence: {note}" for note in getattr(last_parity, "evidence", None) or []
                     if any(word in note for word in WEAK_EVIDENCE)]
    strictness = _loader_strictness(packet, all_concerns)

    # Parity status: only the harness's own run, and only while it is current.
    blockers: list[str] = list(stops)
    if last_parity is None:
        status = "blocked"
        blockers.append("the harness has not run the parity test in this run")
    elif not parity_current:
        status = "blocked"
        blockers.append(f"the last parity run ({last_parity.summary_line()}) is stale: files changed after it")
    else:
        status = last_parity.status
        environment = environment_problem(last_parity) if mode == "parity-debug" or status == "blocked" else None
        if status == "non_skip_pass" and stops:
            status = "blocked"  # a pass of a weakened or tampered test proves nothing
        elif environment:
            blockers.append(ENVIRONMENT_PREFIX + environment)  # named once: not a component bug
        elif status == "scaffold_skip":
            reasons = "; ".join(last_parity.skip_reasons[:3]) or "no reason given"
            blockers.append(f"parity skipped: {reasons}")
        elif status == "debug_red":
            blockers.append(f"parity red: {last_parity.first_failure or last_parity.summary_line()}")
        elif status == "blocked":
            blockers.append(last_parity.blocker or last_parity.first_failure or last_parity.summary_line())

    proto_ok = mode == "prototype" and prototype is not None and prototype.ok
    if mode == "prototype" and prototype is not None and not prototype.ok:
        blockers.insert(len(stops), prototype.failure())
    if mode == "prototype" and prototype is None:
        blockers.insert(len(stops), "prototype evidence was not collected")
    if budget_blocker:
        blockers.append(budget_blocker)

    hatch = _with_hatch_row(workspace, packet, escape_hatch) if escape_hatch is not None and escape_hatch.needs_user_input == "yes" else None
    strict_load = _strict_load(status if parity_current else None, strictness, retry_request,
                               coverage_scope(workspace, packet), last_parity)
    # The next step follows the repository's conversion state, not the mode alone: a prototype
    # whose converted weights are already there and strict-load in a passing parity run has
    # nothing left for conversion to do.
    conversion = conversion_state(workspace, packet, strict_load)
    if hatch is not None:
        next_step = "ask_user"
    elif retry_request is not None:
        next_step = "phase_5_conversion_retry"
    elif proto_ok and not stops and status == "non_skip_pass" and conversion.done:
        next_step = "phase_6_continue"
        all_concerns.append(f"conversion already done ({conversion.describe()}): the prototype continues with "
                            "phase 6, not conversion")
    elif proto_ok and not stops and status != "debug_red":
        next_step = "phase_5_conversion"
    elif mode == "parity-debug" and status == "non_skip_pass" and not stops:
        next_step = "phase_6_continue"
    else:
        next_step = "blocked"
        if not blockers:
            blockers.append("no success evidence: the run ended without a result the harness could verify")

    success = next_step in ("phase_5_conversion", "phase_6_continue")
    blocker = "none"
    if blockers and (status == "blocked" or not success):
        first = blockers[0]
        if budget_blocker and first != budget_blocker:
            first = f"{budget_blocker}; {first}"  # why the run stopped, then where it stood
        blocker = clean_text(first)
    if retry_request is not None and next_step != "phase_5_conversion_retry":
        # The question goes first; the retry request waits in the concerns until it is answered.
        all_concerns.append(f"conversion retry pending ({retry_request.suspected_fix}): {retry_request.failing_keys}")
    return ComponentSkillHandoff(
        component=packet.component,
        mode=mode,
        files_changed=[p for p in changed if p not in conversion_edits],
        official_files_used=_official_files(packet),
        prototype_key_dumps=_key_dumps(packet, mode, prototype),
        port_state_file=packet.port_state_file,
        concerns_or_unknowns=[clean_text(c) for c in all_concerns],
        parity_test=packet.parity_test,
        parity_status=status,
        production_loader_strictness=strictness,
        strict_load=strict_load,
        pytest_output=clean_text(_pytest_output(last_parity, parity_current)),
        blocker=blocker,
        conversion_retry_request=retry_request if next_step == "phase_5_conversion_retry" else "none",
        readme_updated="yes" if packet.local_tests_readme in changed else "no",
        next_step=next_step,
        escape_hatch=hatch if hatch is not None else "none",
    )
