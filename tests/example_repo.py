"""The TinyVid example for tests: written once per test process, copied for each caller.

Writing the example runs torch to make and convert its weights (seconds); a copy of a finished
one is a few milliseconds. Each copy is a whole, independent example (its own git repository,
official reference and packets, the packets' paths pointing into the copy), so tests may change
it freely. Tests of the writer itself call `write_example_repo` directly.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.evals.fixtures import ExampleRepo, write_example_repo

_template: ExampleRepo | None = None


def _the_template() -> ExampleRepo:
    global _template
    if _template is None:
        home = Path(tempfile.mkdtemp(prefix="harness-example-template-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        _template = write_example_repo(home / "example")
    return _template


def copy_example(dest: Path) -> ExampleRepo:
    """A fresh example under `dest`, as `write_example_repo(dest)` would leave it."""
    template = _the_template()
    root = Path(dest).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    for entry in (template.repo, template.official_dir, template.root / "packets"):
        shutil.copytree(entry, root / entry.name, symlinks=True)
    packets = {}
    for key, path in template.packets.items():
        moved = root / path.relative_to(template.root)
        moved.write_text(path.read_text().replace(str(template.root), str(root)))
        packets[key] = moved
    repo = root / template.repo.name
    # The copied index holds the template's inodes; refresh it so git sees a clean checkout.
    subprocess.run(["git", "-C", str(repo), "update-index", "-q", "--refresh"], check=True, capture_output=True)
    return ExampleRepo(root=root, repo=repo, official_dir=root / template.official_dir.name, packets=packets)
