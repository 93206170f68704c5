"""A small FastVideo-shaped repository with the history `harness eval build-suite` mines: the
bundled TinyVid example without its native ports, then one commit per component adding its
model, config and export (as FastVideo's history adds each component), then a commit that makes
the VAE's parity test GPU-only (a CUDA skip and `cuda:0`, as FastVideo's Oobleck test has).
The official reference lives next to the repository, as the example's tests expect."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

VAE_TEST = "tests/local_tests/vaes/test_tinyvid_vae_parity.py"
VAE_MODEL = "fastvideo/models/vaes/tinyvid.py"
T5_MODEL = "fastvideo/models/encoders/tinyvid_t5.py"
CUDA_SKIP = '@pytest.mark.skipif(not torch.cuda.is_available(), reason="TinyVid VAE parity requires CUDA.")\n'


@dataclass(frozen=True)
class HistoryRepo:
    repo: Path
    official: Path
    commits: dict[str, str]  # message -> hash


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def make_history_repo(dest: Path) -> HistoryRepo:
    from harness.evals.fixtures import write_example_repo
    from harness.evals.fixtures.gold import apply_gold

    example = write_example_repo(dest)
    repo, commits = example.repo, {}

    def commit(message: str) -> None:
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", message)
        commits[message] = _git(repo, "rev-parse", "HEAD")

    apply_gold(repo, "vae")
    commit("Add the TinyVid VAE (model, config, export)")
    apply_gold(repo, "text_encoder")
    commit("Add the TinyVid T5 text encoder")
    test = repo / VAE_TEST
    text = test.read_text()
    text = text.replace('return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")',
                        'return torch.device("cuda:0")')
    text = text.replace("def test_tinyvid_vae_parity() -> None:", CUDA_SKIP + "def test_tinyvid_vae_parity() -> None:")
    assert CUDA_SKIP in text and 'torch.device("cuda:0")\n' in text
    test.write_text(text)
    commit("TinyVid VAE parity runs on the GPU")
    return HistoryRepo(repo=repo, official=example.official_dir, commits=commits)
