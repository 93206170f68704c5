"""The graph's nodes, one per module (build.py wires them):

    validate_packet, prepare_workspace, plan, implement, run_parity, debug, ask_human, finalize

Each takes the state (and the run's resources as runtime context) and returns the update it
makes. Side effects that run before an `interrupt()` are idempotent, because LangGraph runs
the node again from the top when the run resumes. Beside them: `agent_runner` (an agent's
conversation inside a node), `tasks` (what each agent is asked), `budget` (the run's budget
and the harness's own cost question) and `common` (what every node shares).

This file imports nothing, so that a light helper (`common.official_ref_dir` for doctor) can
be loaded without every node.
"""
