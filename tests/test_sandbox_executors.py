"""Executors, for real: the docker engine with the test image, bubblewrap, plain subprocesses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness.sandbox.executors import InfrastructureError, make_executor, sandbox_env
from harness.sandbox.executors.base import OutputCap, cap_text
from harness.sandbox.executors.docker import LABEL_PID, LABEL_RUN, gpu_device_requests, prune_containers
from harness.sandbox.workspace import Workspace
# The fixtures module is also a pytest plugin (below); have pytest rewrite it on this import.
pytest.register_assert_rewrite("tests.sandbox_fixtures")
from tests.sandbox_fixtures import tree_digest

pytest_plugins = ["tests.sandbox_fixtures"]

SECRETS = {"OPENAI_API_KEY": "sk-test-openai-0123456789", "HF_TOKEN": "hf_test_token_0123456789",
           "ANTHROPIC_API_KEY": "sk-ant-test-0123456789", "AWS_SECRET_ACCESS_KEY": "aws-test-secret-0123"}


@pytest.fixture
def ws(user_repo, harness_root, tmp_path) -> Workspace:
    official = tmp_path / "official"
    official.mkdir()
    (official / "model.py").write_text("OFFICIAL = True\n")
    return Workspace.create(user_repo, f"ex-{os.getpid()}-{time.monotonic_ns() % 10**8}",
                            official_ref_dir=official, root=harness_root)


@pytest.fixture(params=[pytest.param("docker", marks=pytest.mark.docker),
                        pytest.param("bwrap", marks=pytest.mark.bwrap)])
def sandbox(request, ws):
    """A started docker or bwrap executor on `ws`, closed afterwards."""
    if request.param == "docker":
        image = request.getfixturevalue("sandbox_image")
        ex = make_executor("docker", ws, image=image, memory="1g", pids_limit=128)
    else:
        request.getfixturevalue("bwrap_ok")
        ex = make_executor("bwrap", ws)
    ex.start()
    yield ex
    ex.close()


# ----- pure parts --------------------------------------------------------------------------


def test_gpu_device_requests():
    assert gpu_device_requests("none") == [] and gpu_device_requests(None) == [] and gpu_device_requests("0") == []
    (req,) = gpu_device_requests("all")
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    (req,) = gpu_device_requests("2")
    assert req["Count"] == 2 and req["Capabilities"] == [["gpu"]]
    (req,) = gpu_device_requests(1)
    assert req["Count"] == 1
    (req,) = gpu_device_requests("device=0,3")
    assert req["DeviceIDs"] == ["0", "3"] and not req.get("Count")
    for bad in ("many", "-1", "device=", "device=a,b", "1.5"):
        with pytest.raises(ValueError, match="invalid --gpus"):
            gpu_device_requests(bad)


def test_make_executor_refuses_bad_options(ws):
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("podman", ws)
    with pytest.raises(ValueError, match="invalid --gpus"):
        make_executor("docker", ws, gpus="lots")
    assert make_executor("bwrap", ws, network=True).access.network  # opt-in network (--network)
    with pytest.raises(ValueError, match="needs the docker executor"):
        make_executor("local", ws, gpus="2")


def test_environment_is_an_allow_list(monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TZ", "UTC")
    env = sandbox_env({"HOME": "/tmp"}, {"SEED": "1"})
    assert env["TZ"] == "UTC" and env["SEED"] == "1" and env["HOME"] == "/tmp"
    assert not set(SECRETS) & set(env)
    for name in ("HF_TOKEN", "MY_API_KEY", "db_password", "CLIENT_SECRET", "GOOGLE_APPLICATION_CREDENTIALS"):
        with pytest.raises(ValueError, match="looks like a credential"):
            sandbox_env({}, {name: "x"})
    with pytest.raises(ValueError, match="invalid environment variable name"):
        sandbox_env({}, {"A=B": "x"})


def test_output_caps_keep_head_and_tail():
    data = b"H" * 100 + b"m" * 10_000 + b"T" * 100
    text = cap_text(data, 200)
    assert text.startswith("H" * 100) and text.endswith("T" * 100) and "10000 bytes omitted" in text
    cap = OutputCap(200)
    for i in range(0, len(data), 777):
        cap.feed(data[i:i + 777])
    assert cap.text() == text
    small = OutputCap(200)
    small.feed(b"abc")
    assert small.text() == "abc"


# ----- local ------------------------------------------------------------------------------


def _host_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "stat=,args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if marker in line and not line.lstrip().startswith("Z")
            and "ps -eo" not in line]


def test_local_runs_in_worktree_and_kills_the_group_at_timeout(ws, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    ex = make_executor("local", ws, max_output_bytes=1000)
    ex.start()
    r = ex.run("pwd; echo $OFFICIAL_REF_DIR; env", timeout_s=30)
    assert r.exit_code == 0 and not r.timed_out
    assert r.stdout.splitlines()[0] == str(ws.path)
    assert r.stdout.splitlines()[1] == str(ws.official_ref_dir)
    assert SECRETS["HF_TOKEN"] not in r.stdout
    t0 = time.monotonic()
    r = ex.run("sleep 4301 & sleep 4302 & wait", timeout_s=1.5)
    assert r.timed_out and time.monotonic() - t0 < 10
    time.sleep(0.3)
    assert _host_processes("sleep 430") == []
    big = ex.run("head -c 500000 /dev/zero | tr '\\0' a; echo err >&2; exit 3", timeout_s=30)
    assert big.exit_code == 3 and "bytes omitted" in big.stdout and len(big.stdout) < 1100
    assert big.stderr == "err\n"
    ex.close()


# ----- docker and bwrap ------------------------------------------------------------------


@pytest.fixture
def tcp_server():
    """A TCP server on all host interfaces; yields (host_ip, port) and counts connections."""
    srv = socket.socket()
    srv.bind(("0.0.0.0", 0))
    srv.listen(8)
    srv.settimeout(0.2)
    hits: list[str] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = srv.accept()
                hits.append(addr[0])
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("10.255.255.255", 1))
    host_ip = probe.getsockname()[0]
    probe.close()
    yield host_ip, srv.getsockname()[1], hits
    stop.set()
    t.join()
    srv.close()


CONNECT = textwrap.dedent("""
    import socket, sys
    for host, port in [(h, int(p)) for h, p in (a.split(":") for a in sys.argv[1:])]:
        try:
            socket.create_connection((host, port), timeout=2).close()
            print("REACHED", host, port)
        except OSError as e:
            print("BLOCKED", host, port, type(e).__name__)
""")


def test_network_is_unreachable(sandbox, tcp_server, ws):
    host_ip, port, hits = tcp_server
    (ws.path / "connect.py").write_text(CONNECT)
    targets = f"127.0.0.1:{port} {host_ip}:{port} 172.17.0.1:{port} 1.1.1.1:53"
    r = sandbox.run(f"python connect.py {targets}", timeout_s=60)
    assert r.exit_code == 0, r.stderr
    assert "REACHED" not in r.stdout and r.stdout.count("BLOCKED") == 4
    assert hits == []
    # The same probe outside the sandbox does reach the server: the test can tell.
    local = make_executor("local", ws).run(f"python connect.py {host_ip}:{port}", timeout_s=30)
    assert "REACHED" in local.stdout


@pytest.fixture
def host_dir_outside_tmp():
    """A real host directory outside /tmp (bwrap gives the sandbox its own /tmp)."""
    import shutil
    import uuid

    path = Path.home() / ".cache" / "fastvideo-harness" / f"sandbox-test-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_writes_outside_the_worktree_fail(sandbox, ws, user_repo, host_dir_outside_tmp):
    before = tree_digest(user_repo)
    official = sandbox.official_dir
    r = sandbox.run(
        "echo ok > inside.txt && echo wrote-inside; "
        f"for p in /usr/evil /etc/evil /evil {host_dir_outside_tmp}/evil {official}/evil; do "
        "  (echo x > $p) 2>/dev/null && echo WROTE $p; done; "
        f"echo x > {user_repo}/evil 2>/dev/null; "
        "echo tmp > /tmp/private && echo wrote-tmp", timeout_s=30)
    assert "wrote-inside" in r.stdout and "wrote-tmp" in r.stdout
    assert "WROTE" not in r.stdout
    assert (ws.path / "inside.txt").read_text() == "ok\n"
    # Whatever the sandbox sees at the checkout's path, the real checkout is unchanged.
    assert tree_digest(user_repo) == before
    assert not Path("/usr/evil").exists() and not (ws.official_ref_dir / "evil").exists()
    assert not (host_dir_outside_tmp / "evil").exists()
    # The official reference is readable at OFFICIAL_REF_DIR.
    assert sandbox.run('cat "$OFFICIAL_REF_DIR/model.py"', timeout_s=30).stdout == "OFFICIAL = True\n"


def test_git_metadata_is_not_writable(sandbox, ws, user_repo):
    pointer = (ws.path / ".git").read_text()
    gitdir = pointer.split(":", 1)[1].strip()
    head_before = Path(gitdir, "HEAD").read_text()
    refs_before = subprocess.run(["git", "for-each-ref"], cwd=user_repo, capture_output=True, text=True).stdout
    r = sandbox.run(
        f"(echo 'gitdir: /tmp/evil' > .git) 2>/dev/null && echo WROTE-POINTER; "
        f"rm -f .git 2>/dev/null; [ -f .git ] || echo REMOVED-POINTER; "
        f"(echo evil > {gitdir}/HEAD) 2>/dev/null && echo WROTE-HEAD; "
        f"(echo evil > {user_repo}/.git/config) 2>/dev/null && echo WROTE-CONFIG; "
        f"(echo evil > {user_repo}/.git/hooks/pre-commit) 2>/dev/null && echo WROTE-HOOK; true", timeout_s=30)
    for bad in ("WROTE-POINTER", "REMOVED-POINTER", "WROTE-HEAD", "WROTE-CONFIG", "WROTE-HOOK"):
        assert bad not in r.stdout
    assert (ws.path / ".git").read_text() == pointer
    assert Path(gitdir, "HEAD").read_text() == head_before
    assert subprocess.run(["git", "for-each-ref"], cwd=user_repo, capture_output=True, text=True).stdout == refs_before
    assert not Path(user_repo, ".git/hooks/pre-commit").exists()
    assert ws.checkpoint("after sandbox") is None  # host git still works


def test_secrets_in_the_harness_environment_are_not_visible(sandbox, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    r = sandbox.run("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'", timeout_s=30)
    assert r.exit_code == 0
    for name, value in SECRETS.items():
        assert value not in r.stdout and f"{name}=" not in r.stdout
    with pytest.raises(ValueError, match="credential"):
        sandbox.run("true", env={"HF_TOKEN": "x"})
    assert sandbox.run('echo "$SEED"', env={"SEED": "7"}, timeout_s=30).stdout == "7\n"


def test_timeout_kills_the_command_and_its_children(sandbox):
    t0 = time.monotonic()
    r = sandbox.run("echo started; sleep 4401 & sleep 4402 & sh -c 'sleep 4403' & wait", timeout_s=2)
    assert r.timed_out and "started" in r.stdout
    assert time.monotonic() - t0 < 15
    time.sleep(0.5)
    assert _host_processes("sleep 440") == []
    ps = sandbox.run("ps -eo stat=,args=", timeout_s=30)
    assert ps.exit_code == 0 and not [ln for ln in ps.stdout.splitlines() if "sleep 440" in ln and not ln.startswith("Z")]
    ok = sandbox.run("echo still-alive", timeout_s=30)
    assert ok.stdout == "still-alive\n" and not ok.timed_out


def test_runs_with_no_capabilities(sandbox, ws):
    r = sandbox.run("grep CapEff /proc/self/status; id -u", timeout_s=30)
    cap, uid = r.stdout.split("\n")[:2]
    assert cap.split()[1] == "0000000000000000"
    owner = ws.path.stat().st_uid
    if owner == 0:
        from harness.sandbox.executors.limits import SANDBOX_UID

        owner = SANDBOX_UID  # neither sandbox ever runs commands as root
    assert int(uid) == owner


def test_bwrap_shows_only_what_commands_need(ws, bwrap_ok, host_dir_outside_tmp, harness_root, monkeypatch):
    home = host_dir_outside_tmp / "home"
    (home / ".cache/huggingface").mkdir(parents=True)
    (home / ".cache/huggingface/token").write_text("hf_secret_in_file_0123")
    (home / ".gitconfig").write_text("[user]\n\tname = secret-gitconfig-0123\n")
    other_run = harness_root / "runs" / "other-run"
    other_run.mkdir(parents=True)
    (other_run / "trajectory.jsonl").write_text("other-run-trajectory-0123\n")
    monkeypatch.setenv("HOME", str(home))
    ex = make_executor("bwrap", ws)
    ex.start()
    r = ex.run(f"cat /etc/shadow /etc/gshadow /etc/gitconfig /etc/npmrc /etc/pip.conf /root/.gitconfig "
               f"{home}/.cache/huggingface/token {home}/.gitconfig {other_run}/trajectory.jsonl 2>&1; "
               f"ls / /etc {harness_root} 2>&1; id -un", timeout_s=30)
    assert "hf_secret" not in r.stdout and "secret-gitconfig" not in r.stdout and "other-run-" not in r.stdout
    assert r.stdout.count("No such file or directory") >= 9, r.stdout
    assert "shadow" not in r.stdout.split("/etc:", 1)[1] and "var" not in r.stdout.split()
    # Name resolution of the sandbox user works (tools such as getpass need it).
    assert r.stdout.split()[-1] == ("sandbox" if os.geteuid() == 0 else r.stdout.split()[-1])
    assert "uid" in ex.notice and ("cgroup" in ex.notice or "rlimits" in ex.notice)
    ex.close()


def test_bwrap_pids_limit_holds_against_a_fork_bomb(ws, bwrap_ok):
    ex = make_executor("bwrap", ws, pids_limit=64)
    ex.start()
    bomb = textwrap.dedent("""
        import os, time
        n = 0
        try:
            for _ in range(5000):
                if os.fork() == 0:
                    time.sleep(600)
                    os._exit(0)
                n += 1
        except OSError as e:
            print("refused after", n)
    """)
    (ws.path / "bomb.py").write_text(bomb)
    r = ex.run("python bomb.py", timeout_s=60)
    assert "refused after" in r.stdout, r.stdout + r.stderr
    assert int(r.stdout.split()[-1]) < 64
    time.sleep(0.3)
    assert _host_processes("bomb.py") == []  # nothing of the bomb outlives the command
    assert ex.run("echo fine", timeout_s=30).stdout == "fine\n"
    ex.close()


@pytest.mark.parametrize("kind", [pytest.param("docker", marks=pytest.mark.docker),
                                  pytest.param("bwrap", marks=pytest.mark.bwrap)])
def test_file_size_and_tmp_size_limits(kind, ws, request):
    from harness.sandbox.executors.limits import SandboxLimits

    limits = SandboxLimits(file_size="2m", tmp_size="8m")
    if kind == "docker":
        ex = make_executor("docker", ws, image=request.getfixturevalue("sandbox_image"), memory="512m",
                           limits=limits)
    else:
        request.getfixturevalue("bwrap_ok")
        ex = make_executor("bwrap", ws, limits=limits)
    ex.start()
    try:
        r = ex.run("head -c 1000000 /dev/zero > ok.bin && echo small-ok; "
                   "head -c 3000000 /dev/zero > big.bin; echo big=$?; "
                   "for i in 1 2 3 4 5 6; do head -c 1500000 /dev/zero > /tmp/f$i || echo tmp-full; done", timeout_s=60)
        assert "small-ok" in r.stdout and "big=0" not in r.stdout and "tmp-full" in r.stdout, r.stdout + r.stderr
        assert (ws.path / "big.bin").stat().st_size <= 2 * 1024 ** 2
    finally:
        ex.close()


LEFTOVER = "(while true; do date +%s%N >> tick.txt; sleep 0.05; done) >/dev/null 2>&1 </dev/null &"


def test_processes_left_behind_die_with_the_command(sandbox, ws):
    r = sandbox.run(f"{LEFTOVER} setsid sh -c '{LEFTOVER}' ; sleep 0.3; echo started", timeout_s=30)
    assert "started" in r.stdout, r.stderr
    time.sleep(0.5)
    size = (ws.path / "tick.txt").stat().st_size
    time.sleep(0.5)
    assert (ws.path / "tick.txt").stat().st_size == size  # nobody writes any more
    ps = sandbox.run("ps -eo args=", timeout_s=30).stdout
    assert "while true" not in ps and "sleep 0.05" not in ps


@pytest.mark.docker
def test_docker_a_leftover_holding_the_output_cannot_hang_the_next_command(ws, sandbox_image):
    ex = make_executor("docker", ws, image=sandbox_image, memory="512m", pids_limit=64)
    ex.start()
    try:
        # The detached child keeps the exec's output open and leaves the command's session.
        r = ex.run("setsid sh -c 'sleep 4501' & echo detached", timeout_s=2)
        assert "detached" in r.stdout
        after = ex.run("ps -eo args=; echo next-ran", timeout_s=30)
        assert "next-ran" in after.stdout and "sleep 4501" not in after.stdout
    finally:
        ex.close()


def test_bwrap_hides_the_docker_socket(ws, bwrap_ok):
    if not Path("/var/run/docker.sock").exists():
        pytest.skip("no docker socket on this machine")
    ex = make_executor("bwrap", ws)
    r = ex.run("ls -l /var/run/docker.sock /run/docker.sock 2>&1; python -c \"import socket; s=socket.socket(socket.AF_UNIX); s.connect('/var/run/docker.sock'); print('CONNECTED')\"", timeout_s=30)
    assert "CONNECTED" not in r.stdout


# ----- docker only ------------------------------------------------------------------------


@pytest.mark.docker
def test_docker_container_is_warm_labelled_and_removed_at_close(ws, sandbox_image, docker_client):
    import docker.errors

    ex = make_executor("docker", ws, image=sandbox_image, memory="1g", pids_limit=64)
    ex.start()
    c = docker_client.containers.get(ex.name)
    assert c.labels[LABEL_RUN] == ws.run_id and c.labels[LABEL_PID] == str(os.getpid())
    host_cfg = c.attrs["HostConfig"]
    assert host_cfg["NetworkMode"] == "none" and host_cfg["PidsLimit"] == 64
    assert host_cfg["Memory"] == 1024 ** 3 and host_cfg["ReadonlyRootfs"] is True
    first = ex.run("echo $$ > /tmp/marker; hostname", timeout_s=30)
    second = ex.run("cat /tmp/marker; hostname", timeout_s=30)
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1]  # same container
    assert second.stdout.splitlines()[0].isdigit()
    ex.stop()
    assert docker_client.containers.get(ex.name).status == "exited"
    with pytest.raises(InfrastructureError, match="exited"):
        ex.run("true")
    ex.start()  # resume
    assert ex.run("echo back", timeout_s=30).stdout == "back\n"
    ex.close()
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(ex.name)
    ex.close()  # idempotent


@pytest.mark.docker
def test_docker_runs_as_the_non_root_owner_of_the_worktree(ws, sandbox_image):
    if os.geteuid() != 0:
        owner = (os.getuid(), os.getgid())  # the worktree is already ours
    else:
        owner = (4321, 4321)  # as root, hand the worktree to another user for the test
        for path in [ws.path, *ws.path.rglob("*")]:
            os.lchown(path, *owner)
    ex = make_executor("docker", ws, image=sandbox_image, memory="512m")
    ex.start()
    try:
        r = ex.run("id -u; id -g; echo hi > made-inside.txt && stat -c %u:%g made-inside.txt", timeout_s=30)
        assert r.stdout.split() == [str(owner[0]), str(owner[1]), f"{owner[0]}:{owner[1]}"], r.stderr
    finally:
        ex.close()
        if os.geteuid() == 0:
            for path in [ws.path, *ws.path.rglob("*")]:
                os.lchown(path, 0, 0)


@pytest.mark.docker
@pytest.mark.skipif(os.geteuid() != 0, reason="the root-owned worktree case needs the harness to run as root")
def test_docker_never_runs_as_root_even_when_the_harness_does(ws, sandbox_image):
    from harness.sandbox.executors.docker import SANDBOX_UID

    assert os.stat(ws.path).st_uid == 0
    ex = make_executor("docker", ws, image=sandbox_image, memory="512m")
    ex.start()
    try:
        r = ex.run("id -u; echo hi > made-inside.txt && stat -c %u made-inside.txt", timeout_s=30)
        assert r.stdout.split() == [str(SANDBOX_UID), str(SANDBOX_UID)], r.stderr
        # Files and folders the host-side tools create later (as root) stay writable inside.
        (ws.path / "new_pkg").mkdir()
        (ws.path / "new_pkg" / "mod.py").write_text("x = 1\n")
        r = ex.run("echo y = 2 >> new_pkg/mod.py && touch new_pkg/other.py && cat new_pkg/mod.py", timeout_s=30)
        assert r.exit_code == 0 and "y = 2" in r.stdout, r.stderr
        # The host still commits the sandbox's files, and group bits make no diff noise.
        assert ws.checkpoint("after sandbox writes") is not None
        assert "made-inside.txt" in ws.files_changed()
        ex.run("true", timeout_s=30)  # shares the tree with the sandbox group again
        assert ws.checkpoint("nothing new") is None
    finally:
        ex.close()


@pytest.mark.docker
def test_docker_dead_container_raises_infrastructure_error(ws, sandbox_image, docker_client):
    ex = make_executor("docker", ws, image=sandbox_image, memory="1g")
    ex.start()
    try:
        # Dies while a command runs...
        killer = threading.Timer(1.0, lambda: docker_client.containers.get(ex.name).kill())
        killer.start()
        with pytest.raises(InfrastructureError, match="is exited"):
            ex.run("sleep 30", timeout_s=60)
        killer.join()
        # ...and is found dead before the next one.
        docker_client.containers.get(ex.name).restart()
        assert ex.run("echo up", timeout_s=30).stdout == "up\n"
        docker_client.containers.get(ex.name).kill()
        with pytest.raises(InfrastructureError, match="is exited"):
            ex.run("echo hi")
        docker_client.containers.get(ex.name).remove(force=True)
        with pytest.raises(InfrastructureError, match="no longer exists"):
            ex.run("echo hi")
    finally:
        ex.close()


@pytest.mark.docker
def test_docker_missing_image_is_a_clear_error(ws, docker_client):
    ex = make_executor("docker", ws, image="fastvideo-harness-no-such-image:nope")
    with pytest.raises(InfrastructureError, match="not on this machine"):
        ex.start()


@pytest.mark.docker
def test_docker_image_without_the_needed_tools_is_a_clear_error(ws, docker_client, tmp_path):
    import io
    import tarfile

    import docker.errors

    # An image holding a single file: no shell, no setsid, no timeout.
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"empty image\n"
        info = tarfile.TarInfo("README")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    tag = "fastvideo-harness-test-empty:latest"
    docker_client.api.import_image_from_data(buf.getvalue(), repository=tag.split(":")[0], tag="latest")
    ex = make_executor("docker", ws, image=tag, memory="256m")
    try:
        with pytest.raises(InfrastructureError, match="cannot start the sandbox container|lacks sh, setsid or timeout"):
            ex.start()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(ex.name)
    finally:
        ex.close()
        docker_client.images.remove(tag, force=True)


@pytest.mark.docker
@pytest.mark.slow
def test_docker_fork_bomb_is_contained_by_the_pids_limit(ws, sandbox_image):
    ex = make_executor("docker", ws, image=sandbox_image, memory="1g", pids_limit=64)
    ex.start()
    try:
        r = ex.run("f() { f | f & }; f; sleep 3", timeout_s=6)
        assert r.timed_out or r.exit_code != 0 or "fork" in r.stderr.lower()
        time.sleep(1)
        after = ex.run("ps -e --no-headers | wc -l", timeout_s=30)
        assert after.exit_code == 0 and int(after.stdout.strip()) < 10
    finally:
        ex.close()


PRUNE_CHILD = textwrap.dedent("""
    import sys, time
    from harness.sandbox.workspace import Workspace
    from harness.sandbox.executors import make_executor
    ws = Workspace.open(sys.argv[1], sys.argv[2], root=sys.argv[3])
    ex = make_executor("docker", ws, image=sys.argv[4], memory="512m")
    ex.start()
    print(ex.name, flush=True)
    time.sleep(300)
""")


@pytest.mark.docker
def test_prune_removes_containers_of_dead_runs_only(ws, user_repo, harness_root, sandbox_image, docker_client):
    import docker.errors

    live = make_executor("docker", ws, image=sandbox_image, memory="512m", run_id=ws.run_id + "-live")
    live.start()
    proc = subprocess.Popen([sys.executable, "-c", PRUNE_CHILD, str(user_repo), ws.run_id, str(harness_root),
                             sandbox_image], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        name = proc.stdout.readline().strip()
        assert name == f"fastvideo-harness-{ws.run_id}"
        os.kill(proc.pid, signal.SIGKILL)  # no cleanup can run: the container is left behind
        proc.wait()
        assert docker_client.containers.get(name).status == "running"
        assert name in prune_containers(dry_run=True)
        assert docker_client.containers.get(name)  # dry run removed nothing
        cli = subprocess.run([str(Path(sys.executable).parent / "harness"), "sandbox", "prune"],
                             capture_output=True, text=True)
        assert cli.returncode == 0, cli.stderr
        assert f"removed {name}" in cli.stdout
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(name)
        assert docker_client.containers.get(live.name).status == "running"
    finally:
        if proc.poll() is None:
            proc.kill()
        live.close()


@pytest.mark.docker
def test_docker_container_removed_when_the_owner_is_terminated(ws, user_repo, harness_root, sandbox_image,
                                                              docker_client):
    import docker.errors

    proc = subprocess.Popen([sys.executable, "-c", PRUNE_CHILD, str(user_repo), ws.run_id, str(harness_root),
                             sandbox_image], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    name = proc.stdout.readline().strip()
    assert docker_client.containers.get(name).status == "running"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)
    proc2 = subprocess.Popen([sys.executable, "-c", PRUNE_CHILD, str(user_repo), ws.run_id, str(harness_root),
                              sandbox_image], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    assert proc2.stdout.readline().strip() == name
    proc2.send_signal(signal.SIGINT)  # Ctrl-C
    proc2.wait(timeout=60)
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(name)


@pytest.mark.parametrize("kind", [pytest.param("docker", marks=pytest.mark.docker),
                                  pytest.param("bwrap", marks=pytest.mark.bwrap)])
def test_git_ignored_weights_of_the_checkout_are_mounted_read_only(kind, tmp_path, harness_root, request):
    from tests.sandbox_fixtures import REPO_FILES, make_repo

    repo = make_repo(tmp_path / "with-weights", {**REPO_FILES, ".gitignore": "converted_weights/\n"})
    (repo / "converted_weights" / "tv").mkdir(parents=True)
    (repo / "converted_weights" / "tv" / "vae.txt").write_text("converted\n")
    workspace = Workspace.create(repo, f"assets-{kind}", root=harness_root)
    assert workspace.local_assets() == [("converted_weights", (repo / "converted_weights").resolve())]
    if kind == "docker":
        ex = make_executor("docker", workspace, image=request.getfixturevalue("sandbox_image"), memory="512m")
    else:
        request.getfixturevalue("bwrap_ok")
        ex = make_executor("bwrap", workspace)
    ex.start()
    try:
        read = ex.run("cat converted_weights/tv/vae.txt", timeout_s=30)
        assert read.exit_code == 0 and read.stdout == "converted\n", read.stderr
        write = ex.run("echo changed > converted_weights/tv/vae.txt", timeout_s=30)
        assert write.exit_code != 0
    finally:
        ex.close()
    assert (repo / "converted_weights" / "tv" / "vae.txt").read_text() == "converted\n"
    assert workspace.files_changed() == []  # the mount leaves nothing for git to see
    assert workspace.checkpoint("nothing") is None
