"""A real git checkout, a real Workspace on it, and the real local executor, for agent tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.agents.tools import ToolContext
from harness.sandbox.executors import make_executor
from harness.sandbox.workspace import Workspace

FILES = {
    "README.md": "example checkout\n",
    "fastvideo/__init__.py": "",
    "fastvideo/models/vaes/base.py": "class VAEBase:\n    scale = 0.18215\n\n    def encode(self, x):\n        return x * self.scale\n",
    "fastvideo/models/vaes/common.py": "import math\n\n\ndef tile(x):\n    return math.floor(x)\n",
    "fastvideo/configs/models/vaes/__init__.py": "",
    "tests/local_tests/vaes/test_demo_vae_parity.py": "def test_parity():\n    assert abs(1.0 - 1.0) < 1e-5\n",
    "scripts/checkpoint_conversion/convert.py": "print('convert')\n",
}


def make_repo(root: Path, files: dict[str, str] | None = None) -> Path:
    repo = root / "checkout"
    repo.mkdir(parents=True)
    for rel, text in (files or FILES).items():
        p = repo / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    subprocess.run([*git, "-C", str(repo), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-q", "-m", "base"], check=True)
    return repo


@dataclass
class Setup:
    ws: Workspace
    executor: Any
    ctx: ToolContext
    run_dir: Path
    official: Path
    parity_calls: list[int] = field(default_factory=list)


def make_setup(tmp_path: Path, role: str = "implementer", files: dict[str, str] | None = None) -> Setup:
    repo = make_repo(tmp_path, files)
    official = tmp_path / "official"
    (official / "ref").mkdir(parents=True)
    (official / "ref" / "vae.py").write_text("class OfficialVAE:\n    scaling_factor = 0.18215\n")
    ws = Workspace.create(repo, "t1", official_ref_dir=official, root=tmp_path / "home")
    ex = make_executor("local", ws)
    ex.start()
    ctx = ToolContext(ws, ex, role)
    return Setup(ws, ex, ctx, tmp_path / "run", official)
