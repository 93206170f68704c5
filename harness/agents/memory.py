"""What the roles hand each other: a typed record of every role's finish.

The planner's plan, the implementer's summary and claims, and each debug round's diagnosis,
fix and the harness's parity result after it. A role cut by a budget before `finish` is not a
blank: its work log (last words, files read and edited, its tools' gist; harness.agents.worklog)
stands in, and a cut round's fix is read from its diff. The next role's task message shows it
(`render`), the handoff and PORT_STATUS.md draw from it (`handoff_notes`), and the claims in it
are compared with the harness's own evidence (`disagreements`): an agent's word is recorded,
never trusted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from harness.agents.finish import DebuggerFinish, ImplementerFinish, PlannerFinish
from harness.agents.worklog import WorkLog


class DebugRound(BaseModel):
    round: int
    finish: DebuggerFinish | None = None
    stopped: str | None = None  # why the debugger ended without finish (budget, error)
    files: list[str] = Field(default_factory=list)  # what the round changed (git)
    parity_after: str | None = None  # the harness's run after the round
    log: WorkLog | None = None  # what the round did, when it ended without finish
    diff_fix: str | None = None  # the round's change read from its diff, when it ended without finish


class RunMemory(BaseModel):
    plan: PlannerFinish | None = None
    planner_log: WorkLog | None = None  # a planner that ended without finish
    implementer: ImplementerFinish | None = None
    implementer_stopped: str | None = None
    implementer_log: WorkLog | None = None
    debug_rounds: list[DebugRound] = Field(default_factory=list)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> "RunMemory":
        """The record as the graph state keeps it (`plan`, `planner_log`, `implementer_finish`,
        `debug_attempts`)."""
        rounds = []
        for a in state.get("debug_attempts") or []:
            finished = bool(a.get("finish"))
            rounds.append(DebugRound(round=int(a.get("round") or 0), finish=_parse(DebuggerFinish, a.get("finish")),
                                     stopped=None if finished else a.get("reason"),
                                     files=list(a.get("files") or []), parity_after=a.get("parity_after"),
                                     log=None if finished else _parse(WorkLog, a.get("log")),
                                     diff_fix=None if finished else a.get("diff_fix")))
        impl = state.get("implementer_finish") or {}
        plan = _parse(PlannerFinish, state.get("plan"))
        return cls(plan=plan, planner_log=None if plan is not None else _parse(WorkLog, state.get("planner_log")),
                   implementer=_parse(ImplementerFinish, impl.get("finish")),
                   implementer_stopped=impl.get("reason") if not impl.get("finish") else None,
                   implementer_log=None if impl.get("finish") else _parse(WorkLog, impl.get("log")),
                   debug_rounds=rounds)

    def render(self) -> str:
        """The earlier roles' finishes (or, for a role cut short, its work log), for the next
        role's task message."""
        out: list[str] = []
        if self.plan is not None:
            out.append(f"- planner: {self.plan.summary}")
            if self.plan.plan.concerns:
                out.append("  concerns: " + "; ".join(self.plan.plan.concerns))
        elif self.planner_log is not None:
            out.append(self.planner_log.render("planner"))
        if self.implementer is not None:
            impl = self.implementer
            out.append(f"- implementer: {impl.summary}")
            claims = _claims(impl)
            if claims:
                out.append("  claims: " + "; ".join(claims))
        elif self.implementer_log is not None:
            out.append(self.implementer_log.render("implementer"))
        elif self.implementer_stopped:
            out.append(f"- implementer: stopped without finishing ({self.implementer_stopped})")
        for r in self.debug_rounds:
            if r.finish is not None:
                out.append(f"- debug round {r.round}: {r.finish.summary}")
                for label, value in (("diagnosis", r.finish.diagnosis), ("fix", r.finish.fix), ("blocker", r.finish.blocker)):
                    if value:
                        out.append(f"  {label}: {value}")
            elif r.log is not None:
                out.append(r.log.render(f"debug round {r.round}"))
            else:
                out.append(f"- debug round {r.round}: stopped without finishing ({r.stopped or 'no reason'})")
            if r.files:
                out.append("  changed: " + ", ".join(r.files))
            if r.diff_fix:
                out.append(f"  its change, from the diff: {r.diff_fix}")
            out.append(f"  parity after (the harness's run): {r.parity_after or 'not run'}")
        return "\n".join(out)

    def concerns(self) -> list[str]:
        """Concerns the roles gave in `finish` (they reach the handoff like record_concern)."""
        return list(self.plan.plan.concerns) if self.plan is not None else []

    def handoff_notes(self) -> list[str]:
        """One line per debug round's diagnosis and fix, for the handoff and PORT_STATUS.md."""
        notes = []
        for r in self.debug_rounds:
            if r.finish is not None and (r.finish.diagnosis or r.finish.fix):
                notes.append(f"debug round {r.round}: diagnosis: {r.finish.diagnosis or 'none'}; "
                             f"fix: {r.finish.fix or 'none'}; parity after: {r.parity_after or 'not run'}")
            elif r.finish is None and r.files:
                # Cut before finish: the fix is what its diff shows, never a guess at its intent.
                notes.append(f"debug round {r.round} (ended without finish: {r.stopped or 'no reason'}): "
                             f"fix from the diff: {r.diff_fix or ', '.join(r.files)}; "
                             f"parity after: {r.parity_after or 'not run'}")
        return notes

    def disagreements(self, *, files_changed: list[str], strict_load: str, parity_status: str,
                      key_dumps_ok: bool | None) -> list[str]:
        """Where what an agent claimed in `finish` differs from the harness's evidence."""
        out: list[str] = []
        impl = self.implementer
        if impl is not None:
            missing = [f for f in impl.files_changed if f.removeprefix("./") not in files_changed]
            if missing:
                out.append(f"implementer claimed changes to {', '.join(missing)}, but the diff does not change them")
            if impl.strict_load == "pass" and strict_load not in ("pass", "pass_with_documented_exclusions"):
                out.append(f"implementer claimed strict_load=pass; the harness's evidence says {strict_load}")
            if impl.key_dumps is not None and key_dumps_ok is False:
                out.append("implementer claimed key dumps were written; the harness did not find valid fresh dumps "
                           f"({impl.key_dumps.official}, {impl.key_dumps.fastvideo})")
        if self.debug_rounds:
            last = self.debug_rounds[-1]
            fixed = last.finish is not None and last.finish.fix and not last.finish.blocker
            if fixed and parity_status != "non_skip_pass":
                out.append(f"debug round {last.round} finished with a fix, but the harness's parity status is {parity_status}")
        return out


def _claims(impl: ImplementerFinish) -> list[str]:
    claims = []
    if impl.files_changed:
        claims.append("files_changed " + ", ".join(impl.files_changed))
    if impl.key_dumps is not None:
        claims.append(f"key_dumps {impl.key_dumps.official}, {impl.key_dumps.fastvideo}")
    if impl.strict_load:
        claims.append(f"strict_load {impl.strict_load}")
    if impl.blocker:
        claims.append(f"blocker {impl.blocker}")
    return claims


def _parse(model: type[BaseModel], data: Any) -> Any:
    if not data:
        return None
    try:
        return model.model_validate(data)
    except ValidationError:
        return None  # a record from an older run: shown as missing, never guessed
