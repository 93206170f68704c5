"""Nothing the agent wrote reaches a terminal or the report raw: escape sequences become visible text."""

from __future__ import annotations

from harness.printable import html_text, printable, printable_data
from tests.test_run_helpers import example, harness_cli, plan_turns, write_gold_turns, write_script

OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"
TITLE = "\x1b]0;pwned\x07"
CLEAR = "\x1b[2J\x1b[H"
BIDI = "\u202eevil"


def test_control_characters_and_bidi_overrides_become_visible():
    text = f"ok{OSC52}{TITLE}{CLEAR}\tkept\nline{BIDI}\x9b"
    out = printable(text)
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out and "\x9b" not in out
    assert "\\x1b]52;c;" in out and "\\u202e" in out and "\tkept\nline" in out
    assert printable_data({"k\x1b": [OSC52, ("t", 1)]}) == {"k\\x1b": ["\\x1b]52;c;cm0gLXJmIH4=\\x07", ("t", 1)]}
    assert html_text("<b>\x1b</b>") == "&lt;b&gt;\\x1b&lt;/b&gt;"


def test_show_and_runs_print_the_agents_escape_sequences_as_text(tmp_path):
    ex = example(tmp_path)
    hostile = f"wrote the model{OSC52}{TITLE}{CLEAR}{BIDI}"
    implementer = write_gold_turns()
    implementer[-1]["tool_calls"][0]["args"]["summary"] = hostile
    script = write_script(tmp_path / "s.yaml", planner=plan_turns(), implementer=implementer)
    home = tmp_path / "home"
    run = harness_cli(["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                       "--model", f"scripted:{script}", "--sandbox", "local", "--non-interactive"], home, tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    run_id = next((home / "runs").iterdir()).name
    for args in (["show", run_id], ["runs"]):
        out = harness_cli(args, home, tmp_path)
        assert out.returncode == 0, out.stderr
        for raw in ("\x1b", "\x07", "\u202e"):
            assert raw not in out.stdout and raw not in out.stderr, (args, raw)
    shown = harness_cli(["show", run_id, "--no-diff"], home, tmp_path).stdout
    assert "\\x1b]52;c;" in shown.replace("\n", "")
