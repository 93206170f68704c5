"""Guards on the port's diff: the checks that keep an agent from faking verification.

`check_guards` compares the worktree with the run's base commit and returns findings.
A blocking finding forbids a `non_skip_pass` handoff; findings are fed back to the agent
with `format_findings` so it can undo the change (or ask a person, where that is allowed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterable

from harness.verify.allowed import REGISTRY_FILES, outside_allowed
from harness.verify.guard_files import (
    allowed_key_dumps,
    is_conversion_path,
    tamper_change,
    walk_tamper_candidates,
)
from harness.verify.guard_parity_test import Weakening, check_new_parity_test, compare_parity_tests
from harness.verify.guard_sources import (
    boundary_imports,
    environment_probes,
    machinery_patches,
    new_provenance_comments,
    official_module_names,
    official_reference_uses,
)

PARITY_TEST_WEAKENED = "parity_test_weakened"
PYTEST_TAMPERING = "pytest_tampering"
CONVERSION_EDIT = "conversion_edit"
PRODUCTION_IMPORT_BOUNDARY = "production_import_boundary"
PROVENANCE_COMMENT = "provenance_comment"
OFFICIAL_REFERENCE_AT_RUNTIME = "official_reference_at_runtime"
CLAIM_WITHOUT_RUN = "claim_without_run"
HOST_GIT_REFUSED = "host_git_refused"
OUTSIDE_ALLOWED = "change_outside_allowed_paths"
DEFEAT_DEVICE = "defeat_device"
REGISTRY_CHANGE = "registry_change"


@dataclass(frozen=True)
class GuardFinding:
    name: str
    path: str
    detail: str
    blocking: bool = True


def _field(obj: Any, name: str, default: Any = None) -> Any:
    return obj.get(name, default) if isinstance(obj, dict) else getattr(obj, name, default)


_APPROVES = re.compile(r"\b(loosen|relax|raise|increase|widen|accept|approve|yes)", re.IGNORECASE)
_DECLINES = re.compile(r"^\W*(keep|no\b|don'?t|do not|stop|reject|decline)", re.IGNORECASE)


def _answer_text(hatch: Any) -> str:
    answer = _field(hatch, "answer")
    return answer if isinstance(answer, str) else str(_field(answer, "text", "") or "")


def hatch_covers_tolerance(hatches: Iterable[Any]) -> bool:
    """Public: whether a person approved loosening the parity tolerance."""
    return _hatch_covers_tolerance(hatches)


def _hatch_covers_tolerance(hatches: Iterable[Any]) -> bool:
    """Loosening a tolerance is a person's decision: it is covered only by an answered
    `blocker`/`scope` hatch about the tolerance whose answer approves the loosening
    (a hatch without its answer covers nothing: the person may have said no)."""
    for hatch in hatches:
        if _field(hatch, "decision_type") not in ("blocker", "scope"):
            continue
        if "toleran" not in str(_field(hatch, "question", "")).lower():
            continue
        answer = _answer_text(hatch)
        if answer and _APPROVES.search(answer) and not _DECLINES.search(answer):
            return True
    return False


def _read_now(workspace: Any, rel: str) -> str | None:
    """The file's text now; None when absent or a symlink (the host never reads through a
    link the agent made: it may lead anywhere)."""
    path = workspace.path / rel
    if path.is_symlink() or not path.is_file():
        return None
    return path.read_text(encoding="utf-8", errors="replace")


def _parity_test_findings(workspace: Any, parity_test: str, tolerance_ok: bool) -> list[GuardFinding]:
    if (workspace.path / parity_test).is_symlink():
        return [GuardFinding(PARITY_TEST_WEAKENED, parity_test, "the parity test was replaced by a symbolic link")]
    base, now = workspace.file_at_base(parity_test), _read_now(workspace, parity_test)
    if now is None:
        if base is None:
            return []  # not scaffolded yet: nothing to weaken
        return [GuardFinding(PARITY_TEST_WEAKENED, parity_test, "the parity test was deleted")]
    if base is None:
        problems: list[Weakening] = check_new_parity_test(now)
        prefix = "new parity test: "
    elif base == now:
        return []
    else:
        problems = compare_parity_tests(base, now)
        prefix = ""
    findings = []
    for w in problems:
        covered = w.kind == "tolerance_loosened" and tolerance_ok
        note = " (accepted by an escape hatch)" if covered else ""
        findings.append(GuardFinding(PARITY_TEST_WEAKENED, parity_test, f"{prefix}{w.kind}: {w.detail}{note}", not covered))
    return findings


def _tampering_findings(workspace: Any, changed: list[str]) -> list[GuardFinding]:
    candidates = set(walk_tamper_candidates(workspace.path))
    candidates.update(rel for rel in changed if PurePosixPath(rel).name == "conftest.py")  # deletions
    findings = []
    for rel in sorted(candidates):
        why = tamper_change(rel, workspace.file_at_base(rel), workspace.path / rel)
        if why:
            findings.append(GuardFinding(PYTEST_TAMPERING, rel, f"{why}: this file can change how pytest runs or reports"))
    return findings


def _is_state_file(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    return len(parts) == 4 and parts[:2] == ("tests", "local_tests") and parts[3] in ("PORT_STATUS.md", "README.md")


def _test_support_findings(workspace: Any, changed: list[str], parity_test: str | None) -> list[GuardFinding]:
    """Existing files under tests/ (reference data, helpers, other tests) are the parity
    test's inputs; changing them can make a wrong port pass without touching the test."""
    findings = []
    for rel in changed:
        if not rel.startswith("tests/") or rel == parity_test or _is_state_file(rel):
            continue
        if PurePosixPath(rel).name == "conftest.py" or workspace.file_at_base(rel) is None:
            continue  # conftest has its own guard; new files are not the test's inputs yet
        what = "deleted" if not (workspace.path / rel).exists() else "changed"
        findings.append(GuardFinding(PARITY_TEST_WEAKENED, rel, f"test_support_changed: existing test data or helper {what}; "
                                     "the parity test's reference and helpers are not the agent's to edit"))
    return findings


def _patch_findings(workspace: Any, changed: list[str]) -> list[GuardFinding]:
    findings = []
    for rel in changed:
        if not rel.endswith(".py") or PurePosixPath(rel).name == "conftest.py":
            continue
        now = _read_now(workspace, rel)
        if now is None:
            continue
        for patch in sorted(machinery_patches(now) - machinery_patches(workspace.file_at_base(rel) or "")):
            findings.append(GuardFinding(PYTEST_TAMPERING, rel, f"patches `{patch}`: this changes what the test's checks do"))
    return findings


def _conversion_findings(changed: list[str], packet: Any) -> list[GuardFinding]:
    allowed = allowed_key_dumps(packet)
    return [
        GuardFinding(CONVERSION_EDIT, rel, "component work must not edit conversion scripts or converted weights; "
                     "return a conversion_retry_request instead")
        for rel in changed
        if is_conversion_path(rel) and rel not in allowed
    ]


def _production_findings(workspace: Any, changed: list[str]) -> list[GuardFinding]:
    findings = []
    official = official_module_names(getattr(workspace, "official_ref_dir", None))
    for rel in changed:
        if not rel.startswith("fastvideo/"):
            continue
        now = _read_now(workspace, rel)
        if now is None:
            continue
        base = workspace.file_at_base(rel)
        if rel.endswith(".py"):
            for use in sorted(official_reference_uses(now, official) - official_reference_uses(base or "", official)):
                findings.append(GuardFinding(OFFICIAL_REFERENCE_AT_RUNTIME, rel,
                                             f"production code {use}: the port must compute its own numbers, "
                                             "not call the official reference it is compared with"))
            for probe in sorted(environment_probes(now) - environment_probes(base or "")):
                findings.append(GuardFinding(DEFEAT_DEVICE, rel,
                                             f"production code {probe}: a port must not look at how it is run "
                                             "(it could behave right only while verified)"))
            for imp in sorted(boundary_imports(now) - boundary_imports(base or "")):
                module, name = imp.split(":")
                findings.append(GuardFinding(PRODUCTION_IMPORT_BOUNDARY, rel,
                                             f"runtime import of model class {name} from {module}; port it natively "
                                             "(tokenizers and pure data utilities are allowed)"))
        if rel.endswith((".py", ".pyi", ".sh")):
            for hit in new_provenance_comments(base, now, rel.endswith((".py", ".pyi"))):
                # Evidence for review (upstream files carry their attribution), never a block.
                findings.append(GuardFinding(PROVENANCE_COMMENT, rel,
                                             f"{hit}: a provenance comment; a reviewer checks the attribution",
                                             blocking=False))
    return findings


def _host_git_findings(workspace: Any) -> list[GuardFinding]:
    """What the host's git refuses to take from the worktree (nested repositories, oversized
    files, attribute drivers): each blocks, since the checkpoint no longer matches the disk."""
    findings = getattr(workspace, "host_findings", None)
    return [GuardFinding(HOST_GIT_REFUSED, rel, why) for rel, why in (findings() if callable(findings) else [])]


def _outside_allowed_findings(workspace: Any, packet: Any) -> list[GuardFinding]:
    """Changes outside the paths the component may change: the verdict never tests them,
    and those Python or pytest could load are blocking."""
    findings = []
    for rel, kind, why in outside_allowed(workspace, packet):
        what = "deleted" if kind == "missing" else f"a {kind}" if kind != "file" else "changed"
        detail = (f"{what} outside the paths this component may change (its target files and bucket, "
                  "the local tests README, PORT_STATUS.md); the verdict tests the base version")
        findings.append(GuardFinding(OUTSIDE_ALLOWED, rel, f"{detail}; {why}" if why else detail, blocking=why is not None))
    return findings


def check_guards(
    workspace: Any,
    packet: Any,
    *,
    mode: str,
    accepted_hatches: Iterable[Any] = (),
    parity_claimed: bool = False,
    parity_ran: bool = False,
) -> list[GuardFinding]:
    """All guard findings for the worktree against the base commit. `mode` is the skill
    mode; every guard applies in both modes (a prototype may not weaken a test either)."""
    findings: list[GuardFinding] = _host_git_findings(workspace)  # before anything walks the tree
    changed = sorted(set(workspace.files_changed()))
    parity_test = _field(packet, "parity_test")
    if isinstance(parity_test, str) and parity_test not in ("", "unknown"):
        findings += _parity_test_findings(workspace, parity_test, _hatch_covers_tolerance(accepted_hatches))
    findings += _test_support_findings(workspace, changed, parity_test if isinstance(parity_test, str) else None)
    findings += _tampering_findings(workspace, changed)
    findings += _patch_findings(workspace, changed)
    findings += _conversion_findings(changed, packet)
    findings += _production_findings(workspace, changed)
    findings += [GuardFinding(REGISTRY_CHANGE, rel, "the model registry changed (a port registers its class "
                              "there): allowed, and for a reviewer to check", blocking=False)
                 for rel in changed if rel in REGISTRY_FILES]
    reported = {f.path for f in findings}  # one finding per path: the most specific guard's
    findings += [f for f in _outside_allowed_findings(workspace, packet) if f.path not in reported]
    if parity_claimed and not parity_ran:
        findings.append(GuardFinding(CLAIM_WITHOUT_RUN, str(parity_test),
                                     f"parity claimed in {mode} mode but the harness did not run the test "
                                     "after the last edit"))
    return findings


def blocking(findings: Iterable[GuardFinding]) -> list[GuardFinding]:
    return [f for f in findings if f.blocking]


def format_findings(findings: Iterable[GuardFinding]) -> str:
    """The findings as text for the agent: what tripped, where, and that it must be undone."""
    items = list(findings)
    if not items:
        return "Guards: no findings."
    lines = [f"Guards found {len(items)} problem(s) in your changes:"]
    for i, f in enumerate(items, 1):
        tag = "BLOCKING" if f.blocking else "recorded"
        lines.append(f"{i}. [{tag}] {f.name} in {f.path}: {f.detail}")
    if any(f.blocking for f in items):
        lines.append("Undo these changes; a blocking finding means the port cannot be handed off as passing.")
    return "\n".join(lines)
