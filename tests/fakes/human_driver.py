"""Runs a planner driven by the `human` model on a fresh example workspace (for the human tests).

Usage: python -m tests.fakes.human_driver <empty dir>; prints `RESULT <reason> <finish args JSON>`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from harness.agents.loop import run_agent
from harness.agents.models import make_model
from tests.fakes.workspace import make_setup


def main() -> None:
    setup = make_setup(Path(sys.argv[1]), role="planner")
    try:
        result = run_agent("planner", make_model("human"), setup.ctx, system="plan", task="Plan the demo VAE.")
    finally:
        setup.executor.close()
    print(f"RESULT {result.reason} {json.dumps(result.finish_args)}", flush=True)


if __name__ == "__main__":
    main()
