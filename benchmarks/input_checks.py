"""What the checks before a run cost: `validate_run_input` (packet, checkout, skill) with and
without the outside-input checks (model key or local server, Docker engine and image, bwrap,
pytest), per sandbox, and how fast a dead local model server is reported.

    python benchmarks/input_checks.py [--repeat 5]

Prints milliseconds per check and the ratio of the outside checks to the rest of validation.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from harness.evals.fixtures import write_example_repo
from harness.run_config.config import RunConfig
from harness.run_config.inputs import input_problems
from harness.run_config.validation import validate_run_input


def median_ms(call, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ex = write_example_repo(Path(tmp) / "example")
        for sandbox in ("local", "bwrap", "docker"):
            cfg = RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model="human", sandbox=sandbox)
            whole = median_ms(lambda: validate_run_input(cfg), args.repeat)
            outside = median_ms(lambda: input_problems(cfg.model, None, sandbox, None), args.repeat)
            print(f"{sandbox:7} validate_run_input {whole:8.1f} ms   outside-input checks {outside:7.1f} ms   "
                  f"share {outside / whole:5.1%}")
        dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens
        ms = median_ms(lambda: input_problems("openai:m", dead, "local", None), 1)
        print(f"unreachable --base-url reported in {ms:.0f} ms (first call, httpx import included)")


if __name__ == "__main__":
    main()
