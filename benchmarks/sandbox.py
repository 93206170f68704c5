"""Sandbox costs, as medians over repeated runs.

    python benchmarks/sandbox.py [--repeat 15] [--image fastvideo-harness-sandbox:test] [--skip-docker]

1. workspace creation (git worktree) on a FastVideo-sized tree (the fastvideo sdist, committed
   once) versus `git clone` of the same repository;
2. a command in the warm docker container (`docker exec`) versus a fresh `docker run` per command;
3. a command under bubblewrap versus the local executor versus a bare subprocess;
4. `files_changed` with one edited file: the hardened snapshot (a disk listing hashed without
   filters, cold and with its blob cache warm) versus plain `git add -A` in a scratch index;
5. one agent step, a no-op `run` tool call (`true`) under bwrap as a run makes it (the tool,
   its trajectory line and the checkpoint after it), on the bundled example repository and on
   the FastVideo-sized tree, beside plain `bwrap` with the same namespaces and mounts of the
   worktree; a pause between steps stands for the model's turn (`--think-ms`, not timed).

    python benchmarks/sandbox.py --only step      # just the step (5)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.sandbox.executors import make_executor  # noqa: E402
from harness.sandbox.workspace import Workspace  # noqa: E402

SDIST_CACHE = Path.home() / ".cache" / "fastvideo-harness" / "sdist"


def median_ms(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@harness.invalid", *args],
                   cwd=cwd, check=True, capture_output=True)


def fastvideo_repo(dest: Path) -> Path:
    """The fastvideo sdist unpacked under `dest` as a git repository with one commit."""
    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    archives = sorted(SDIST_CACHE.glob("fastvideo-*.tar.gz"))
    if not archives:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                        "fastvideo", "-d", str(SDIST_CACHE)], check=True)
        archives = sorted(SDIST_CACHE.glob("fastvideo-*.tar.gz"))
    with tarfile.open(archives[-1]) as tar:
        tar.extractall(dest, filter="data")
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    git(top, "init", "-q")
    git(top, "add", "-A")
    git(top, "commit", "-q", "-m", "sdist")
    return top


def bench_workspace(tmp: Path, repeat: int) -> list[tuple[str, float]]:
    """Worktree versus clone, interleaved so that machine load hits both alike."""
    repo = fastvideo_repo(tmp / "src")
    files = subprocess.run(["git", "ls-files"], cwd=repo, capture_output=True, text=True).stdout.count("\n")
    times: dict[str, list[float]] = {"worktree": [], "clone": [], "clone_nohl": []}
    for i in range(repeat):
        t0 = time.perf_counter()
        ws = Workspace.create(repo, f"bench-{i}", root=tmp / "home")
        times["worktree"].append(time.perf_counter() - t0)
        ws.remove(delete_branch=True)
        for key, flags in (("clone", []), ("clone_nohl", ["--no-hardlinks"])):
            dest = tmp / f"{key}-{i}"
            t0 = time.perf_counter()
            subprocess.run(["git", "clone", "-q", *flags, str(repo), str(dest)], check=True)
            times[key].append(time.perf_counter() - t0)
            shutil.rmtree(dest)
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return [(f"workspace create (git worktree add), {files} files", med["worktree"]),
            ("git clone (local, hardlinks)", med["clone"]),
            ("git clone --no-hardlinks", med["clone_nohl"])]


def bench_docker(ws: Workspace, image: str, repeat: int) -> list[tuple[str, float]]:
    import docker

    ex = make_executor("docker", ws, image=image, memory="1g")
    t0 = time.perf_counter()
    ex.start()
    start_ms = (time.perf_counter() - t0) * 1000
    try:
        warm = median_ms(lambda: ex.run("true", timeout_s=60), repeat)
        warm_py = median_ms(lambda: ex.run("python -c pass", timeout_s=60), repeat)
    finally:
        ex.close()
    client = docker.from_env()
    fresh = median_ms(lambda: client.containers.run(image, ["true"], remove=True, network_mode="none"), repeat)
    fresh_py = median_ms(lambda: client.containers.run(image, ["python", "-c", "pass"], remove=True,
                                                       network_mode="none"), repeat)
    return [("docker: start the run's container (once)", start_ms),
            ("docker: warm exec `true`", warm), ("docker: fresh `docker run` `true`", fresh),
            ("docker: warm exec `python -c pass`", warm_py), ("docker: fresh run `python -c pass`", fresh_py)]


def bench_bwrap(ws: Workspace, repeat: int) -> list[tuple[str, float]]:
    bw, local = make_executor("bwrap", ws), make_executor("local", ws)
    rows = [("bare subprocess `true`", median_ms(lambda: subprocess.run(["true"]), repeat)),
            ("local executor `true`", median_ms(lambda: local.run("true", timeout_s=60), repeat)),
            ("bwrap executor `true`", median_ms(lambda: bw.run("true", timeout_s=60), repeat)),
            ("local executor `python -c pass`", median_ms(lambda: local.run("python -c pass", timeout_s=60), repeat)),
            ("bwrap executor `python -c pass`", median_ms(lambda: bw.run("python -c pass", timeout_s=60), repeat))]
    local.close()
    return rows


def bench_snapshot(tmp: Path, ws: Workspace, repeat: int) -> list[tuple[str, float]]:
    """The hardened snapshot against the plain-git one it replaced (which git walks itself)."""
    (ws.path / "fastvideo" / "bench_edit.py").write_text("X = 1\n")

    def plain_git() -> None:
        index = tmp / "scratch-index"
        index.unlink(missing_ok=True)
        env = {"GIT_INDEX_FILE": str(index), "PATH": "/usr/bin:/bin"}
        subprocess.run(["git", "read-tree", "HEAD"], cwd=ws.path, env=env, check=True)
        subprocess.run(["git", "add", "-A"], cwd=ws.path, env=env, check=True)
        tree = subprocess.run(["git", "write-tree"], cwd=ws.path, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()
        subprocess.run(["git", "diff", "--name-only", ws.base_commit, tree], cwd=ws.path, check=True,
                       capture_output=True)

    cold = median_ms(lambda: Workspace.open(ws.repo, ws.run_id, root=ws.path.parent.parent).files_changed(), repeat)
    warm = median_ms(ws.files_changed, repeat)
    plain = median_ms(plain_git, repeat)
    return [("files_changed, hardened, cold blob cache", cold), ("files_changed, hardened, warm blob cache", warm),
            ("files_changed, plain git add -A (before)", plain),
            (f"ratio warm hardened / plain git = {warm / plain:.2f}x, cold / plain = {cold / plain:.2f}x", 0.0)]


def plain_bwrap_argv(worktree: Path) -> list[str]:
    """bwrap with the executor's namespaces, /usr, /tmp, /dev, /proc and the worktree; nothing else."""
    argv = ["bwrap"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if Path(top).is_symlink():
            argv += ["--symlink", str(Path(top).readlink()), top]
        elif Path(top).is_dir():
            argv += ["--ro-bind", top, top]
    argv += ["--tmpfs", "/tmp", "--dev", "/dev", "--proc", "/proc", "--bind", str(worktree), str(worktree),
             "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent",
             "--new-session", "--chdir", str(worktree), "--", "/bin/sh", "-c", "true"]
    return argv


def bench_step(ws: Workspace, label: str, repeat: int, think_s: float) -> list[tuple[str, float]]:
    """The no-op `run` step as the agent loop makes it, against plain bwrap on the same tree."""
    from harness.agents.models.base import ToolCall
    from harness.agents.tools import ToolContext, execute, tools_for_role
    from harness.graph.nodes.agent_runner import CheckpointingTrajectory

    plain = plain_bwrap_argv(ws.path)
    ex = make_executor("bwrap", ws)
    ex.start()
    ctx = ToolContext(workspace=ws, executor=ex, role="implementer")
    tools = tools_for_role("implementer")
    traj = CheckpointingTrajectory(ws.path.parent / f"{ws.run_id}-trajectory.jsonl", ws, "implement")
    call = ToolCall(id="c1", name="run", args={"command": "true"})

    def step() -> None:
        out = execute(ctx, tools, call)
        traj.tool_result("implementer", call.id, call.name, out.content, out.is_error, 0.0)

    cases = {"plain bwrap `true`": lambda: subprocess.run(plain, check=True),
             "bwrap executor run `true`": lambda: ex.run("true"),
             "no-op `run` step (tool + trajectory + checkpoint)": step}
    times: dict[str, list[float]] = {name: [] for name in cases}
    try:
        step()  # the first step shares the tree and takes the first checkpoint: not a steady step
        for _ in range(repeat):  # interleaved, so that load from elsewhere hits every case alike
            for name, case in cases.items():
                time.sleep(think_s)
                t0 = time.perf_counter()
                case()
                times[name].append((time.perf_counter() - t0) * 1000)
        rows = [(f"{label}: {name}", statistics.median(values)) for name, values in times.items()]
        rows.append((f"{label}: checkpoint, nothing changed", median_ms(lambda: ws.checkpoint("bench"), repeat)))
    finally:
        ex.close()
    rows.append((f"{label}: ratio step / plain bwrap = {rows[2][1] / rows[0][1]:.2f}x", 0.0))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--image", default="fastvideo-harness-sandbox:test")
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--only", choices=["step"], help="run one part only")
    parser.add_argument("--think-ms", type=float, default=100.0,
                        help="untimed pause between steps, standing for the model's turn (default 100)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fvh-bench-"))
    if args.only == "step":
        try:
            rows = steps(tmp, args.repeat, args.think_ms / 1000)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return report(rows, args.repeat)
    try:
        rows = bench_workspace(tmp, args.repeat)
        ws = Workspace.create(next((tmp / "src").iterdir()), "bench-exec", root=tmp / "home")
        rows += bench_snapshot(tmp, ws, args.repeat)
        if shutil.which("bwrap"):
            rows += bench_bwrap(ws, args.repeat)
            rows += steps(tmp, args.repeat, args.think_ms / 1000)
        if not args.skip_docker:
            rows += bench_docker(ws, args.image, args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(rows, args.repeat)


def steps(tmp: Path, repeat: int, think_s: float) -> list[tuple[str, float]]:
    """The step on the bundled example repository and on the FastVideo-sized tree."""
    from harness.evals.fixtures import write_example_repo

    example = write_example_repo(tmp / "example")
    small = Workspace.create(example.repo, "bench-step-example", official_ref_dir=example.official_dir,
                             root=tmp / "home")
    big_repo = next((tmp / "src").iterdir()) if (tmp / "src").is_dir() else fastvideo_repo(tmp / "src")
    big = Workspace.create(big_repo, "bench-step-fastvideo", root=tmp / "home")
    files = sum(1 for _ in big.path.rglob("*"))
    return (bench_step(small, "example repo", repeat, think_s)
            + bench_step(big, f"FastVideo-sized tree ({files} entries)", repeat, think_s))


def report(rows: list[tuple[str, float]], repeat: int) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  median (ms), n={repeat}")
    for name, ms in rows:
        print(f"{name:<{width}}  {ms:10.1f}" if ms else name)


if __name__ == "__main__":
    main()
