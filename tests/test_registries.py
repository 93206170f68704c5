"""The extension points are registries: a sandbox kind and a model provider registered here,
one line each, are accepted by `harness run`'s checks and used by a real run; an unknown name
is refused with the registry's list."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.agents import providers
from harness.agents.models import make_model
from harness.agents.models.scripted import ScriptedModel
from harness.agents.providers import Provider, register_provider
from harness.run_config.config import RunConfig, config_problems
from harness.run_config.validation import model_problems, validate_run_input
from harness.sandbox import registry
from harness.sandbox.executors import make_executor
from harness.sandbox.executors.process import LocalExecutor, make_local_executor
from harness.sandbox.registry import SandboxKind, register_sandbox
from harness.sandbox.workspace import Workspace
from tests.test_run_helpers import example, load_handoff, plan_turns, write_gold_turns

COMMANDS: list[str] = []  # every command the toy sandbox ran
SCRIPTS = {"gold": {"planner": plan_turns(), "implementer": write_gold_turns()}}


class ToyExecutor(LocalExecutor):
    """A plain subprocess that keeps a record of what it ran (as local: no isolation)."""

    kind = "toy"

    def run(self, command: str, timeout_s: float = 600, env: dict[str, str] | None = None):
        COMMANDS.append(command)
        return super().run(command, timeout_s=timeout_s, env=env)


def make_toy_executor(ws: Workspace, **options: object) -> ToyExecutor:
    local = make_local_executor(ws, **options)
    return ToyExecutor(ws, python=local.python, access=local.access)


def make_toy_model(arg: str, *, base_url: str | None = None, price: object = None, **kwargs: object) -> ScriptedModel:
    if arg not in SCRIPTS:
        raise ValueError(f"toy: no script {arg!r}")
    return ScriptedModel.from_dict(SCRIPTS[arg], name=f"toy:{arg}")


@pytest.fixture
def toys(monkeypatch):
    """The toy kind and provider, registered for one test (the registries are put back after)."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setattr(providers, "_PROVIDERS", dict(providers._PROVIDERS))
    register_sandbox(SandboxKind("toy", "a recorded local subprocess", make=make_toy_executor,
                                 isolated=False, network_switch=False))
    register_provider(Provider("toy", "toy:<script>", make=make_toy_model))
    COMMANDS.clear()


def test_registered_kinds_are_accepted_and_unknown_ones_refused_with_the_list(toys, tmp_path):
    ex = example(tmp_path)
    cfg = RunConfig(packet=ex.packets["vae:parity-debug"], repo=ex.repo, model="toy:gold", sandbox="toy",
                    home=tmp_path / "home")
    packet, problems = validate_run_input(cfg)
    assert packet is not None and problems == []
    assert isinstance(make_model("toy:gold"), ScriptedModel)

    cfg.sandbox, cfg.model = "vm", "gemini:pro"
    _, problems = validate_run_input(cfg)
    assert "sandbox: unknown sandbox 'vm'; registered: docker, bwrap, local, toy" in problems
    assert ("model: unknown model spec 'gemini:pro'; expected anthropic:<model> | openai:<model> | "
            "scripted:<file> | human | replay:<trajectory.jsonl> | toy:<script>") in problems
    with pytest.raises(ValueError, match=r"expected .*\| toy:<script>"):
        make_model("gemini:pro")
    (problem,) = model_problems("toy")  # the toy takes an argument
    assert problem.startswith("model: unknown model spec 'toy'")

    # The traits come from the entry: the toy has no network switch, as local.
    cfg.sandbox, cfg.network = "toy", True
    assert any(p.startswith("network: the toy sandbox has the host's network anyway; --network is for docker "
                            "and bwrap") for p in config_problems(cfg))


def test_the_executor_factory_builds_a_registered_kind_and_names_the_list(toys, tmp_path):
    ex = example(tmp_path)
    ws = Workspace.create(ex.repo, "toy-run", root=tmp_path / "home")
    executor = make_executor("toy", ws)
    try:
        executor.start()
        result = executor.run("echo from-the-toy")
    finally:
        executor.close()
        ws.remove(delete_branch=True)
    assert isinstance(executor, ToyExecutor) and result.stdout.strip() == "from-the-toy"
    assert COMMANDS == ["echo from-the-toy"]
    with pytest.raises(ValueError, match="unknown executor 'vm': choose one of docker, bwrap, local, toy"):
        make_executor("vm", ws)


@pytest.mark.slow
def test_harness_run_uses_a_registered_sandbox_and_provider(toys, tmp_path, monkeypatch):
    from harness.cli import app

    ex = example(tmp_path)
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))

    def run(sandbox: str, run_id: str):
        return CliRunner().invoke(app, ["run", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo),
                                        "--model", "toy:gold", "--sandbox", sandbox, "--non-interactive",
                                        "--run-id", run_id])

    result = run("toy", "toy1")
    assert result.exit_code == 0, result.output
    handoff = load_handoff(Path(tmp_path / "home" / "runs" / "toy1"))
    assert handoff.parity_status == "non_skip_pass"
    assert any("pytest" in c for c in COMMANDS), COMMANDS  # the parity test ran in the toy sandbox

    refused = run("vm", "toy2")
    assert refused.exit_code == 2
    assert "sandbox: unknown sandbox 'vm'; registered: docker, bwrap, local, toy" in refused.output


def test_harness_doctor_checks_a_registered_sandbox(toys, tmp_path, monkeypatch):
    from harness.cli import app

    ex = example(tmp_path)
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    base = ["doctor", "--packet", str(ex.packets["vae:parity-debug"]), "--repo", str(ex.repo)]
    result = CliRunner().invoke(app, [*base, "--sandbox", "toy"])
    assert result.exit_code == 0, result.output
    assert "harness doctor (toy)" in result.output
    assert COMMANDS, "the preflight ran nothing in the toy sandbox"

    refused = CliRunner().invoke(app, [*base, "--sandbox", "vm"])
    assert refused.exit_code == 2
    assert "sandbox: unknown sandbox 'vm'; registered: docker, bwrap, local, toy" in refused.output
