"""The agents' tools on a real worktree with the real local executor."""

from __future__ import annotations

import os
import sys

import pytest

from harness.agents.models.base import ToolCall
from harness.agents.tools import (
    MAX_GREP_MATCHES,
    OUTPUT_LIMIT_BYTES,
    execute,
    tools_for_role,
    truncate_middle,
)
from harness.contracts import EscapeHatch
from tests.fakes.workspace import make_setup


@pytest.fixture
def setup(tmp_path):
    s = make_setup(tmp_path)
    yield s
    s.executor.close()


def call(setup, name, args, role="implementer"):
    return execute(setup.ctx, tools_for_role(role), ToolCall(id="c1", name=name, args=args))


def test_role_tool_sets():
    planner = {t.name for t in tools_for_role("planner")}
    writer = {t.name for t in tools_for_role("debugger")}
    assert planner == {"read_file", "list_dir", "grep", "record_concern", "resolve_concern", "raise_escape_hatch", "finish"}
    assert writer == planner | {"edit_file", "write_file", "run", "run_parity_test", "read_parity_log", "diff"}
    assert {t.name for t in tools_for_role("implementer")} == writer
    with pytest.raises(ValueError, match="unknown role 'boss'"):
        tools_for_role("boss")


def test_tool_specs_are_json_schema_from_the_arg_models():
    specs = {t.name: t.spec for t in tools_for_role("implementer")}
    edit = specs["edit_file"].parameters
    assert edit["type"] == "object" and set(edit["required"]) == {"path", "old", "new"}
    assert edit["additionalProperties"] is False
    assert specs["read_file"].parameters["required"] == ["path"]
    # finish is the role's one schema: unknown fields are refused, never silently dropped
    assert specs["finish"].parameters["additionalProperties"] is False
    assert set(specs["finish"].parameters["properties"]) == {"summary", "files_changed", "key_dumps", "strict_load", "blocker"}


def test_read_file_numbers_lines_and_pages_by_characters(setup):
    body = "".join(f"line {i}\n" for i in range(1, 4001))
    (setup.ws.path / "big.txt").write_text(body)
    out = call(setup, "read_file", {"path": "big.txt"})
    assert not out.is_error
    first, last = out.content.split("\n")[0], out.content.split("\n")[-1]
    assert first.startswith("big.txt (lines 1-") and first.endswith(" of 4000)")
    assert "     1\tline 1" in out.content
    shown = int(first.split("-")[1].split()[0])
    assert 10_000 < len(out.content) < 13_000  # a page is sized by characters, not lines
    assert last == f"[{4000 - shown} more lines below; call read_file with start_line={shown + 1}]"
    out = call(setup, "read_file", {"path": "big.txt", "start_line": 3990, "end_line": 4010})
    assert "(lines 3990-4000 of 4000)" in out.content and "[end of file]" in out.content
    out = call(setup, "read_file", {"path": "big.txt", "start_line": 5000})
    assert out.is_error and "4000 lines" in out.content
    # long lines: a page holds fewer of them
    (setup.ws.path / "wide.txt").write_text("".join("x" * 1500 + "\n" for _ in range(50)))
    out = call(setup, "read_file", {"path": "wide.txt"})
    assert out.content.startswith("wide.txt (lines 1-7 of 50)")


def test_read_file_shows_a_key_dump_compactly(setup):
    import json

    dump = {f"decoder.up.{i}.conv.weight": [320, 320, 3, 3] for i in range(40)}
    (setup.ws.path / "keys.json").write_text(json.dumps(dump, indent=2))
    raw_lines = len(json.dumps(dump, indent=2).splitlines())
    out = call(setup, "read_file", {"path": "keys.json"})
    assert '"decoder.up.0.conv.weight": [320, 320, 3, 3]' in out.content
    assert f"compact JSON view of {raw_lines} raw lines" in out.content
    assert len(out.content.splitlines()) < raw_lines / 4
    raw = call(setup, "read_file", {"path": "keys.json", "start_line": 1, "end_line": 5})
    assert "(lines 1-5 of" in raw.content and "320," in raw.content  # raw text on request


def test_relative_official_path_reads_from_the_official_dir(setup):
    out = call(setup, "read_file", {"path": "ref/vae.py"})
    assert not out.is_error and "scaling_factor = 0.18215" in out.content
    assert "ref/vae.py" in call(setup, "grep", {"pattern": "scaling_factor", "path": "ref"}).content
    assert "vae.py" in call(setup, "list_dir", {"path": "ref"}).content
    # the worktree wins when it has the path
    (setup.ws.path / "ref").mkdir()
    (setup.ws.path / "ref" / "vae.py").write_text("worktree copy\n")
    assert "worktree copy" in call(setup, "read_file", {"path": "ref/vae.py"}).content
    # never a write into the official dir through the fallback
    out = call(setup, "edit_file", {"path": "ref/other.py", "old": "a", "new": "b"})
    assert out.is_error and not (setup.official / "ref" / "other.py").exists()
    missing = call(setup, "read_file", {"path": "nope/vae.py"})
    assert missing.is_error and str(setup.official.resolve()) in missing.content
    assert str(setup.ws.path.resolve()) in missing.content


def test_read_file_official_reference_dir_is_readable(setup):
    out = call(setup, "read_file", {"path": str(setup.official / "ref" / "vae.py")})
    assert not out.is_error and "scaling_factor = 0.18215" in out.content


def test_read_missing_binary_and_directory(setup):
    (setup.ws.path / "blob.bin").write_bytes(b"\0\1\2" * 10)
    assert "no such file" in call(setup, "read_file", {"path": "nope.py"}).content
    assert "binary" in call(setup, "read_file", {"path": "blob.bin"}).content
    assert "is a directory" in call(setup, "read_file", {"path": "fastvideo"}).content


def test_path_escapes_are_refused(setup, tmp_path):
    secret = tmp_path / "outside.txt"
    secret.write_text("outside the workspace\n")
    os.symlink(secret, setup.ws.path / "link.txt")
    for args in ({"path": "../outside.txt"}, {"path": str(secret)}, {"path": "link.txt"}):
        out = call(setup, "read_file", args)
        assert out.is_error and out.content.startswith("path refused:"), out.content
        assert "outside the workspace\n" not in out.content
    out = call(setup, "write_file", {"path": str(setup.official / "ref" / "vae.py"), "content": "x"})
    assert out.is_error and "read-only" in out.content
    out = call(setup, "write_file", {"path": ".git/config", "content": "x"})
    assert out.is_error and "path refused" in out.content


def test_conversion_paths_are_refused_except_key_dumps(setup):
    out = call(setup, "edit_file", {"path": "scripts/checkpoint_conversion/convert.py", "old": "convert", "new": "x"})
    assert out.is_error and "conversion_retry_request" in out.content
    assert (setup.ws.path / "scripts/checkpoint_conversion/convert.py").read_text() == "print('convert')\n"
    out = call(setup, "write_file", {"path": "converted_weights/demo/vae/model.safetensors", "content": "x"})
    assert out.is_error and "_mapping" in out.content
    out = call(setup, "write_file", {"path": "converted_weights/demo/_mapping/official_keys.txt", "content": "a (3,)\n"})
    assert not out.is_error, out.content
    assert (setup.ws.path / "converted_weights/demo/_mapping/official_keys.txt").exists()


def test_list_dir(setup):
    out = call(setup, "list_dir", {"path": "fastvideo/models/vaes"})
    assert "base.py  (" in out.content and "common.py" in out.content
    root = call(setup, "list_dir", {})
    assert "fastvideo/" in root.content and ".git" not in root.content
    assert call(setup, "list_dir", {"path": "README.md"}).is_error


def test_grep_regex_glob_and_cap(setup):
    out = call(setup, "grep", {"pattern": r"scale\s*=", "path": "fastvideo"})
    assert "fastvideo/models/vaes/base.py:2:     scale = 0.18215" in out.content
    out = call(setup, "grep", {"pattern": "def ", "glob": "*.py"})
    assert "fastvideo/models/vaes/common.py:4: def tile(x):" in out.content
    assert "README" not in out.content
    assert "invalid regular expression" in call(setup, "grep", {"pattern": "("}).content
    (setup.ws.path / "many.txt").write_text("hit\n" * (MAX_GREP_MATCHES + 50))
    out = call(setup, "grep", {"pattern": "hit", "path": "many.txt"})
    assert out.content.count("many.txt:") == MAX_GREP_MATCHES
    assert f"stopped at {MAX_GREP_MATCHES} matches" in out.content
    assert "no matches" in call(setup, "grep", {"pattern": "zzz_not_there"}).content


def test_edit_file_unique_match_and_errors(setup):
    path = "fastvideo/models/vaes/base.py"
    out = call(setup, "edit_file", {"path": path, "old": "0.18215", "new": "0.13025"})
    assert not out.is_error and "1 replacement at line 2" in out.content
    assert "scale = 0.13025" in (setup.ws.path / path).read_text()
    out = call(setup, "edit_file", {"path": path, "old": "self", "new": "me"})
    assert out.is_error and "matches 2 times" in out.content
    out = call(setup, "edit_file", {"path": path, "old": "not in file", "new": "x"})
    assert out.is_error and "(0 matches)" in out.content
    assert call(setup, "edit_file", {"path": path, "old": "", "new": "x"}).is_error


def test_edit_reports_only_the_problems_it_introduced(setup):
    path = "fastvideo/models/vaes/common.py"
    (setup.ws.path / path).write_text("import os\nimport math\n\n\ndef tile(x):\n    return math.floor(x)\n")
    out = call(setup, "edit_file", {"path": path, "old": "return math.floor(x)", "new": "return floor(x) + y"})
    assert "introduced 3 problem(s)" in out.content
    assert "undefined name 'floor'" in out.content and "undefined name 'y'" in out.content
    assert "'math' imported but unused" in out.content  # the edit made it unused
    assert "'os' imported but unused" not in out.content  # it was there before
    out = call(setup, "edit_file", {"path": path, "old": "def tile(x):", "new": "def tile(x:"})
    assert "syntax error" in out.content
    out = call(setup, "write_file", {"path": "fastvideo/new.py", "content": "def f():\n    return g\n"})
    assert "created fastvideo/new.py" in out.content and "undefined name 'g'" in out.content
    out = call(setup, "write_file", {"path": "fastvideo/clean.py", "content": "X = 1\n"})
    assert "problem" not in out.content


def test_run_truncates_head_and_tail(setup):
    n = 100_000
    out = call(setup, "run", {"command": f"{sys.executable} -c \"print('A' * {n}); print('END')\""})
    assert "exit code: 0" in out.content
    assert "bytes cut ...]" in out.content and out.content.rstrip().endswith("(empty)")
    assert "END" in out.content
    assert len(out.content) < 2 * OUTPUT_LIMIT_BYTES + 500
    out = call(setup, "run", {"command": "echo oops >&2; exit 3"})
    assert out.is_error and "exit code: 3" in out.content and "oops" in out.content
    out = call(setup, "run", {"command": "sleep 5", "timeout_s": 0.5})
    assert out.is_error and "timed out" in out.content
    assert setup.ctx.last_command == "sleep 5"


def test_truncate_middle_marks_the_cut():
    text = "h" * 50 + "m" * 1000 + "t" * 50
    cut = truncate_middle(text, 100)
    assert cut.startswith("h" * 50) and cut.endswith("t" * 50) and "[... 1000 bytes cut ...]" in cut
    assert truncate_middle("short", 100) == "short"


def test_run_parity_test_uses_the_context_runner(setup):
    assert "no parity runner" in call(setup, "run_parity_test", {}).content
    from harness.sandbox.pytest_runner import run_parity_test

    setup.ctx.run_parity = lambda: run_parity_test(
        setup.executor, "tests/local_tests/vaes/test_demo_vae_parity.py", setup.run_dir / "logs"
    )
    out = call(setup, "run_parity_test", {})
    assert not out.is_error
    assert "status=non_skip_pass passed=1 failed=0 errors=0 skipped=0" in out.content, out.content


def test_concerns_are_kept_once_numbered_and_resolvable(setup):
    setup.ctx.instructions = ["compare posterior mean/mode, never unseeded samples"]
    out = call(setup, "record_concern", {"text": "posterior uses mode, not sample"})
    assert "recorded as C1" in out.content and setup.ctx.concerns == ["posterior uses mode, not sample"]
    again = call(setup, "record_concern", {"text": "Posterior uses mode -- not sample."})
    assert "already recorded as C1" in again.content and len(setup.ctx.concerns) == 1
    # A packet instruction echoed back is not a concern the run found.
    echo = call(setup, "record_concern", {"text": "Compare posterior mean/mode, never unseeded samples!"})
    assert "restates the packet" in echo.content and len(setup.ctx.concerns) == 1
    call(setup, "record_concern", {"text": "decode crop order unverified for odd heights"})
    done = call(setup, "resolve_concern", {"concern": "C2", "resolution": "checked: test_odd_sizes passes"})
    assert not done.is_error and "C2 resolved" in done.content
    assert setup.ctx.resolved == {"decode crop order unverified for odd heights": {
        "resolution": "checked: test_odd_sizes passes", "by": "implementer"}}
    by_text = call(setup, "resolve_concern", {"concern": "posterior uses mode, not sample", "resolution": "mode used"})
    assert "C1 resolved" in by_text.content
    missing = call(setup, "resolve_concern", {"concern": "C9", "resolution": "x"})
    assert missing.is_error and "C1, C2" in missing.content


HATCH = {
    "decision_type": "ambiguity",
    "question": "Which official VAE definition is the source of truth?",
    "options": ["Use vae_v2.py: matches the published weights", "Use vae_v1.py: older layout"],
    "recommended_option": "Use vae_v2.py",
    "safe_default": "port vae_v2.py",
    "evidence": "ref/vae_v1.py and ref/vae_v2.py differ in the decoder's upsampling order",
}


def test_escape_hatch_accepted_builds_the_contract_model(setup):
    out = call(setup, "raise_escape_hatch", HATCH)
    assert out.end == "asked" and isinstance(out.data, EscapeHatch)
    assert out.data.state_snapshot.phase == "implementer"
    assert out.data.state_snapshot.command_or_test == "not_run"
    assert out.data.blocked_until_answered == "yes"


def test_escape_hatch_refused_by_policy_and_invalid(setup):
    seen = []
    setup.ctx.hatch_policy = lambda h: seen.append(h) or "red parity is a recoverable failure"
    out = call(setup, "raise_escape_hatch", HATCH)
    assert out.end is None and out.is_error and "refused: red parity is a recoverable failure" in out.content
    assert isinstance(seen[0], EscapeHatch)
    bad = dict(HATCH, question="Two questions? Really?")
    out = call(setup, "raise_escape_hatch", bad)
    assert out.is_error and "not valid" in out.content and "question" in out.content
    out = call(setup, "raise_escape_hatch", dict(HATCH, options=["a", "b", "c", "d", "e"]))
    assert out.is_error and "invalid arguments" in out.content


def test_unknown_tool_bad_args_and_malformed_json(setup):
    out = call(setup, "delete_everything", {})
    assert out.is_error and "unknown tool 'delete_everything'" in out.content and "read_file" in out.content
    out = call(setup, "edit_file", {"path": "README.md"})
    assert out.is_error and "invalid arguments for edit_file" in out.content and "old: Field required" in out.content
    out = call(setup, "read_file", {"path": "README.md", "colour": "red"})
    assert out.is_error and "colour" in out.content
    out = call(setup, "read_file", '{"path": "README.md"')
    assert out.is_error and "not a JSON object" in out.content
    out = call(setup, "run", {"command": "ls"}, role="planner")
    assert out.is_error and "unknown tool 'run'" in out.content


def test_finish_keeps_role_fields_and_refuses_unknown_ones(setup):
    out = call(setup, "finish", {"summary": "plan ready", "plan": {"steps": ["a"], "concerns": ["odd sizes"]}}, role="planner")
    assert out.end == "finished"
    assert out.data["summary"] == "plan ready" and out.data["plan"]["steps"] == ["a"]
    assert out.data["plan"]["concerns"] == ["odd sizes"]
    bad = call(setup, "finish", {"summary": "plan ready", "extra": 1}, role="planner")
    assert bad.is_error and bad.end is None and "extra" in bad.content  # the agent sees it, nothing is dropped
    assert call(setup, "finish", {}, role="planner").is_error
    out = call(setup, "finish", {"summary": "fixed", "diagnosis": "pad", "fix": "crop"}, role="debugger")
    assert out.data == {"summary": "fixed", "diagnosis": "pad", "fix": "crop"}


def test_finish_fields_are_said_once_by_the_tool_schema():
    import json

    from harness.agents.finish import FINISH_MODELS
    from harness.agents.prompts import role_prompt

    for role, model in FINISH_MODELS.items():
        spec = next(t.spec for t in tools_for_role(role) if t.name == "finish")
        assert set(spec.parameters["properties"]) == set(model.model_fields)
        for name, info in model.model_fields.items():
            assert spec.parameters["properties"][name]["description"] == info.description
        # The prompt points at the schema and never lists the fields again.
        assert "finish with these arguments" not in role_prompt(role) and "tool's schema" in role_prompt(role)
        # The schema is compact: no titles, no null variants, nested models inlined.
        text = json.dumps(spec.parameters)
        assert '"title"' not in text and '"null"' not in text and "$ref" not in text


def test_escape_hatch_safe_default_may_be_left_out(setup):
    setup.ctx.hatch_policy = lambda hatch: None
    args = {k: v for k, v in HATCH.items() if k != "safe_default"}
    out = call(setup, "raise_escape_hatch", args)
    assert out.end == "asked" and out.data.safe_default == "none"
    schema = next(t.spec for t in tools_for_role("planner") if t.name == "raise_escape_hatch").parameters
    assert "safe_default" not in schema["required"] and "leave it out" in schema["properties"]["safe_default"]["description"]


def test_grep_and_list_dir_search_the_official_reference_too(setup):
    (setup.official / "ref" / "factory.py").write_text("def build_vae():\n    return OfficialVAE()\n")
    out = call(setup, "grep", {"pattern": "scal"})
    # Both roots, each hit labelled, each path relative to the root it was found in (read_file takes it).
    assert "[worktree] fastvideo/models/vaes/base.py:2:     scale = 0.18215" in out.content
    assert "[official] ref/vae.py:2:     scaling_factor = 0.18215" in out.content
    assert not call(setup, "read_file", {"path": "ref/vae.py"}).is_error
    only_official = call(setup, "grep", {"pattern": "build_vae", "path": "ref"})
    assert only_official.content.count("[official] ref/factory.py:1:") == 1 and "[worktree]" not in only_official.content
    listing = call(setup, "list_dir", {})
    assert "[worktree] .: " in listing.content and "[official] .: " in listing.content and "ref/" in listing.content
    sub = call(setup, "list_dir", {"path": "ref"})
    assert sub.content.startswith("[official] ref: 2 entries") and "factory.py" in sub.content
    # A path both roots have is searched in both.
    (setup.ws.path / "ref").mkdir()
    (setup.ws.path / "ref" / "vae.py").write_text("scaling_factor = 0.5\n")
    both = call(setup, "grep", {"pattern": "scaling_factor", "path": "ref"})
    assert "[worktree] ref/vae.py:1:" in both.content and "[official] ref/vae.py:2:" in both.content


def test_run_tells_the_truth_about_its_sandbox(setup):
    out = call(setup, "run", {"command": "echo $PYTHONPATH; echo $SCRATCH_DIR; pwd; echo kept > $SCRATCH_DIR/note"})
    lines = out.content.split("--- stdout ---\n")[1].splitlines()
    root = str(setup.ws.path)
    assert lines[0].split(":")[0] == root  # the worktree first on PYTHONPATH
    assert lines[1] == f"{root}/.harness-scratch" and os.path.realpath(lines[2]) == os.path.realpath(root)
    again = call(setup, "run", {"command": "cat $SCRATCH_DIR/note"})
    assert "kept" in again.content  # the scratch dir persists between commands
    # The agents' notes, never the port: not in the diff, a checkpoint or the branch.
    assert setup.ws.files_changed() == [] and setup.ws.checkpoint("after scratch") is None
    assert ".harness-scratch" not in setup.ws.diff()


def test_diff_tool_shows_the_agents_change(setup):
    assert "no changes" in call(setup, "diff", {}).content
    call(setup, "write_file", {"path": "fastvideo/new.py", "content": "X = 1\n"})
    out = call(setup, "diff", {"path": "fastvideo/new.py"})
    assert "+X = 1" in out.content and not out.is_error


def test_parity_log_is_readable_by_the_agent(setup):
    assert "no parity log" in call(setup, "read_parity_log", {}).content
    logs = setup.run_dir / "logs"
    logs.mkdir(parents=True)
    (logs / "parity-test_x-1.log").write_text("".join(f"row {i}\n" for i in range(100)) + "decode: max_abs=0.5\n")
    setup.ctx.logs_dir = logs
    out = call(setup, "read_parity_log", {})
    assert "parity-test_x-1.log (lines 1-101 of 101)" in out.content and "decode: max_abs=0.5" in out.content
    hits = call(setup, "read_parity_log", {"pattern": "max_abs"})
    assert "1 matching line" in hits.content and "row 5" not in hits.content
    refused = call(setup, "read_parity_log", {"log": "../../etc/passwd"})
    assert refused.is_error and "no parity log named" in refused.content


@pytest.mark.bwrap
def test_run_through_bubblewrap(tmp_path):
    from harness.sandbox.executors import make_executor

    s = make_setup(tmp_path)
    ex = make_executor("bwrap", s.ws)
    ex.start()
    s.ctx.executor = ex
    try:
        call(s, "write_file", {"path": "probe.py", "content": "print(open('README.md').read().strip())\n"})
        out = call(s, "run", {"command": "python probe.py && touch /etc/should_fail"})
    finally:
        ex.close()
        s.executor.close()
    assert "example checkout" in out.content
    assert out.is_error and "exit code: 1" in out.content  # the host outside the worktree is read-only
