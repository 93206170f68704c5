"""What the agents are sent, before and after a change: requests per role and characters per request.

    python benchmarks/agent_context.py [--before REF] [--plays NAME,...] [--json out.json]

Four plays of the core suite are replayed through `harness run` with the real OpenAI SDK against a
loopback server that speaks the Chat Completions wire format, once with the harness as it was at
`--before` (default: the commit before the agents carried their context) and once with this checkout:

  vae-crop-bug        a seeded VAE crop bug (parity-debug): plan, implement, debug
  encoder-prototype   the text encoder written from scratch (prototype mode)
  ask-two-definitions a must-ask task: the planner asks, a person answers option 1, the run goes on
  t5-mask-one-turn    a seeded encoder mask bug with one turn per role

The model in the loop is a small policy that behaves the same against both versions: each role
has files it needs to see and actions to take; it reads a file only when the file's content is not
already in what it was sent, takes each action once, and calls finish when told its last turn has
come. So a harness that carries context (the planner's reads, a key map) takes fewer requests, and
one that repeats itself sends more characters per request. Printed side by side: requests, the
first request's characters and the mean characters per request, per role; and the harness's
parity runs and test seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.evals.fixtures import BUGS_BY_ID  # noqa: E402
from harness.evals.fixtures.gold import gold_files  # noqa: E402
from harness.evals.prepare import prepare_task, write_fixture  # noqa: E402
from harness.evals.tasks import load_suite  # noqa: E402
from tests.fakes.openai_server import completion  # noqa: E402
from tests.fakes.server import FakeServer, Reply  # noqa: E402

ROLE_WORDS = {"PLANNER": "planner", "IMPLEMENTER": "implementer", "PARITY-DEBUGGER": "debugger"}
LAST_TURN = "this is your last turn"


@dataclass
class Need:
    """Read `path` unless its content (or `marker`) is already in the request."""

    path: str
    marker: str | None = None


@dataclass
class Act:
    """Call a tool once per conversation."""

    name: str
    args: dict[str, Any]


@dataclass
class Play:
    task: str
    steps: dict[str, list[Need | Act]]
    finish: dict[str, dict[str, Any]]
    max_turns: int | None = None
    answer: int | None = None  # the option a person picks when the run pauses


def _plays() -> dict[str, Play]:
    crop = BUGS_BY_ID["vae_crop"]
    mask = BUGS_BY_ID["t5_mask_ignored"]
    vae_writes = [Act("write_file", {"path": p, "content": t}) for p, t in sorted(gold_files("vae").items())]
    t5_writes = [Act("write_file", {"path": p, "content": t}) for p, t in sorted(gold_files("text_encoder").items())]
    key_map = Need("scripts/checkpoint_conversion/tinyvid_to_fastvideo.py", marker="Converted config key map")
    plan = {"summary": "port natively; see the plan", "plan": {"reuse_or_port": "port", "steps": ["model", "config", "export"]}}
    return {
        "vae-crop-bug": Play(
            task="bug-vae-crop",
            steps={"planner": [Need("tinyvid_official/vae.py"), Need("tinyvid_official/factory.py"),
                               Need("fastvideo/models/vaes/tinyvid.py")],
                   "implementer": [Need("tinyvid_official/vae.py"), Need("fastvideo/models/vaes/tinyvid.py")],
                   "debugger": [Need("fastvideo/models/vaes/tinyvid.py"), Act("edit_file", {"path": crop.path, "old": crop.new, "new": crop.old}),
                                Act("run_parity_test", {})]},
            finish={"planner": plan, "implementer": {"summary": "the port exists; parity decides"},
                    "debugger": {"summary": "decode cropped the wrong corner", "diagnosis": "crop", "fix": "top-left crop"}},
        ),
        "encoder-prototype": Play(
            task="port-text-encoder-prototype",
            steps={"planner": [Need("tinyvid_official/text_encoder.py"), Need("tinyvid_official/factory.py"),
                               Need("configs/text_encoder.json")],
                   "implementer": [Need("tinyvid_official/text_encoder.py"), Need("configs/text_encoder.json"), key_map,
                                   *t5_writes],
                   "debugger": []},
            finish={"planner": plan, "implementer": {"summary": "wrote model, config, export"}, "debugger": {"summary": "done"}},
        ),
        "ask-two-definitions": Play(
            task="ask-vae-two-definitions",
            steps={"planner": [Need("tinyvid_official/vae.py"), Need("tinyvid_official/vae_release.py"),
                               Act("raise_escape_hatch", {})],  # filled from the task's expected hatch
                   "implementer": [Need("tinyvid_official/vae.py"), Need("configs/vae.json"), *vae_writes],
                   "debugger": []},
            finish={"planner": plan, "implementer": {"summary": "ported vae.py as answered"}, "debugger": {"summary": "done"}},
            answer=1,
        ),
        "t5-mask-one-turn": Play(
            task="bug-t5-mask-ignored", max_turns=1,
            steps={"planner": [Need("tinyvid_official/text_encoder.py")],
                   "implementer": [Need("fastvideo/models/encoders/tinyvid_t5.py")],
                   "debugger": [Need("fastvideo/models/encoders/tinyvid_t5.py"),
                                Act("edit_file", {"path": mask.path, "old": mask.new, "new": mask.old}), Act("run_parity_test", {})]},
            finish={"planner": plan, "implementer": {"summary": "the port exists"},
                    "debugger": {"summary": "padded keys were not masked", "fix": "add mask_bias"}},
        ),
    }


def _flat(text: str) -> str:
    """Text without spacing, quotes and commas: a file's line matches however a tool showed it
    (numbered, or JSON in read_file's compact view)."""
    return re.sub(r"[\s\"',]+", "", text)


def _sample(path: Path) -> str:
    """A line of the file long enough to tell whether its content was sent (flattened)."""
    lines = [_flat(ln) for ln in path.read_text().splitlines() if len(_flat(ln)) >= 24]
    return lines[len(lines) // 2] if lines else _flat(path.read_text())[:40]


class Policy:
    """Answers each request from what the request holds (stateless, so resumes and both harness
    versions are treated alike), and records what was sent."""

    def __init__(self, play: Play, files: dict[str, Path], hatch: dict[str, Any]) -> None:
        self.play, self.files, self.hatch = play, files, hatch
        self.sent: list[tuple[str, int]] = []  # (role, characters of messages + tools)

    def __call__(self, body: Any) -> Reply:
        messages = body.get("messages", [])
        system = messages[0].get("content", "") if messages else ""
        role = next((r for word, r in ROLE_WORDS.items() if f"Your role: {word}" in system), "unknown")
        self.sent.append((role, len(json.dumps(messages)) + len(json.dumps(body.get("tools", [])))))
        seen = "\n".join(str(m.get("content") or "") for m in messages)
        flat = _flat(seen)
        done = [(c["function"]["name"], c["function"]["arguments"]) for m in messages if m.get("role") == "assistant"
                for c in m.get("tool_calls") or []]
        last_user = next((str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        if LAST_TURN not in last_user:
            for step in self.play.steps.get(role, []):
                if isinstance(step, Need):
                    if (step.marker and step.marker in seen) or _sample(self.files[step.path]) in flat:
                        continue
                    return completion(tool_calls=[("read_file", {"path": step.path})], prompt_tokens=len(seen) // 4)
                args = self.hatch if step.name == "raise_escape_hatch" else step.args
                if (step.name, json.dumps(args)) not in done:
                    return completion(tool_calls=[(step.name, args)], prompt_tokens=len(seen) // 4)
        return completion(tool_calls=[("finish", self.play.finish.get(role, {"summary": "done"}))], prompt_tokens=len(seen) // 4)


def _harness(tree: Path, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, text=True, capture_output=True,
                          env={**env, "PYTHONPATH": str(tree)}, timeout=1800)


def run_play(name: str, play: Play, tree: Path, work: Path) -> dict[str, Any]:
    """One play against the harness in `tree`: what each role was sent, and the test runs."""
    tasks = {t.id: t for t in load_suite("core")}
    task = tasks[play.task]
    fixture = work / "fixture"
    example = write_fixture(task.spec.fixture, fixture)
    prepared = prepare_task(task, fixture, example, work / "task")
    official = prepared.official_dir
    files = {p: (official / p if (official / p).exists() else prepared.repo / p)
             for steps in play.steps.values() for p in [s.path for s in steps if isinstance(s, Need)]}
    hatch = task.spec.expected_hatch.model_dump(exclude={"raised_by"}) if task.spec.expected_hatch else {}
    policy = Policy(play, files, hatch)
    home = work / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL",)}
    env.update(OPENAI_API_KEY="sk-benchmark-loopback", HARNESS_HOME=str(home))
    limits = task.spec.limits
    args = ["run", "--packet", str(prepared.packet), "--repo", str(prepared.repo), "--model", "openai:gpt-4.1",
            "--sandbox", "local", "--non-interactive", "--on-budget", "blocked",
            "--max-turns", str(play.max_turns or limits.max_turns), "--max-debug-rounds", str(limits.max_debug_rounds)]
    with FakeServer(Reply(500, {"error": {"message": "unused"}}), policy) as srv:
        proc = _harness(tree, [*args, "--base-url", srv.url + "/v1"], env, work)
        run_dir = next((home / "runs").iterdir())
        if play.answer is not None and proc.returncode == 3:
            proc = _harness(tree, ["answer", run_dir.name, "--option", str(play.answer), "--non-interactive"], env, work)
    summary = json.loads((run_dir / "summary.json").read_text())
    roles: dict[str, dict[str, Any]] = {}
    for role, chars in policy.sent:
        r = roles.setdefault(role, {"requests": 0, "first": chars, "chars": 0})
        r["requests"] += 1
        r["chars"] += chars
    return {"play": name, "exit_code": proc.returncode, "status": summary.get("status"),
            "parity_runs": summary.get("parity_runs"), "test_s": summary.get("totals", {}).get("test_s"),
            "roles": roles}


# The harness before the agents carried their context (budgets told, the packet and finish fields
# said once, cut roles handing on their work, parity results reused).
BEFORE = "3c4b82e"


def export_tree(ref: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref, "harness"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def _row(before: dict[str, Any] | None, after: dict[str, Any] | None, key: str) -> str:
    b = (before or {}).get(key, 0)
    a = (after or {}).get(key, 0)
    return f"{b:>7} {a:>7}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", default=BEFORE, help=f"git ref of the harness to compare with (default: {BEFORE})")
    parser.add_argument("--plays", help="comma-separated play names (default: all)")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    opts = parser.parse_args()
    plays = _plays()
    names = opts.plays.split(",") if opts.plays else list(plays)
    ref = opts.before
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="agent-context-") as tmp:
        old = export_tree(ref, Path(tmp) / "before")
        for name in names:
            for label, tree in (("before", old), ("after", ROOT)):
                print(f"{name}: {label} ...", file=sys.stderr, flush=True)
                results.setdefault(name, {})[label] = run_play(name, plays[name], tree, Path(tmp) / name / label)
    print(f"before = {ref}, after = this checkout; chars = JSON characters of messages + tools per request")
    print(f"{'play / role':<34}{'requests':>16}{'first request':>16}{'mean chars':>16}")
    print(f"{'':<34}{'before   after':>16}{'before   after':>16}{'before   after':>16}")
    total = {"before": [0, 0], "after": [0, 0]}
    for name in names:
        b, a = results[name]["before"], results[name]["after"]
        print(f"{name}  (status {b['status']} -> {a['status']}; harness parity runs {b['parity_runs']} -> "
              f"{a['parity_runs']}; test s {b['test_s']:.0f} -> {a['test_s']:.0f})")
        for role in ("planner", "implementer", "debugger"):
            rb, ra = b["roles"].get(role), a["roles"].get(role)
            if not rb and not ra:
                continue
            mb = rb["chars"] // rb["requests"] if rb else 0
            ma = ra["chars"] // ra["requests"] if ra else 0
            print(f"  {role:<32}{_row(rb, ra, 'requests'):>16}{_row(rb, ra, 'first'):>16}{mb:>8} {ma:>7}")
            for label, r in (("before", rb), ("after", ra)):
                if r:
                    total[label][0] += r["requests"]
                    total[label][1] += r["chars"]
    (rb_n, rb_c), (ra_n, ra_c) = total["before"], total["after"]
    print(f"all plays: requests {rb_n} -> {ra_n} ({ra_n / max(rb_n, 1):.2f}x), mean chars per request "
          f"{rb_c // max(rb_n, 1)} -> {ra_c // max(ra_n, 1)} ({(ra_c / max(ra_n, 1)) / max(rb_c / max(rb_n, 1), 1):.2f}x)")
    if opts.json:
        opts.json.write_text(json.dumps({"before": ref, "results": results}, indent=2))


if __name__ == "__main__":
    main()
