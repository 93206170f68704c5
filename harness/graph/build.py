"""The skill loop as a LangGraph state machine, readable in one place.

    validate_packet -> prepare_workspace -> plan -> implement -> run_parity -> finalize
                                                                   |   ^
                                                                   v   |
                                                                  debug
    Any agent's accepted escape hatch (and the harness's own `cost` question when the budget
    is spent) goes to ask_human, which pauses with interrupt() and returns to whoever asked.

No node has a retry policy: model calls are retried in one place (agents/models/retry.py),
and a fault that outlasts it, or a broken sandbox, stops the run resumable (graph/faults.py)
from the checkpoint before the node, for `harness resume`.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from harness.graph import routing, server
from harness.graph.nodes.ask_human import ask_human
from harness.graph.nodes.debug import debug
from harness.graph.nodes.finalize import finalize
from harness.graph.nodes.implement import implement
from harness.graph.nodes.plan import plan
from harness.graph.nodes.prepare_workspace import prepare_workspace
from harness.graph.nodes.run_parity import run_parity
from harness.graph.nodes.validate_packet import validate_packet
from harness.graph.state import RunState


def recursion_limit(max_debug_rounds: int, extensions: int = 0) -> int:
    """Steps one invocation may take: the fixed path, two steps per debug round, and room
    for escape hatches (ask_human and the node that asked, a few times)."""
    rounds = max_debug_rounds * (1 + extensions) + max_debug_rounds
    return 12 + 3 * rounds + 12


def build_graph(checkpointer: Any = None, *, server_entry: bool = False) -> Any:
    """The skill loop. `server_entry` adds `open_run` first, for runs a LangGraph server starts
    (the harness's runner makes the run directory itself)."""
    g = StateGraph(RunState, context_schema=server.RunContext)

    g.add_node("validate_packet", validate_packet)
    g.add_node("prepare_workspace", prepare_workspace)
    g.add_node("plan", plan)
    g.add_node("implement", implement)
    g.add_node("run_parity", run_parity)
    g.add_node("debug", debug)
    g.add_node("ask_human", ask_human)
    g.add_node("finalize", finalize)

    if server_entry:
        g.add_node("open_run", server.open_run)
        g.add_edge(START, "open_run")
        g.add_conditional_edges("open_run", server.after_open, ["validate_packet", END])
    else:
        g.add_edge(START, "validate_packet")
    g.add_conditional_edges("validate_packet", routing.after_validate, ["prepare_workspace", END])
    g.add_conditional_edges("prepare_workspace", routing.after_prepare, ["plan", END])
    g.add_conditional_edges("plan", routing.after_agent("implement"), ["implement", "ask_human", "finalize"])
    g.add_conditional_edges("implement", routing.after_agent("run_parity"), ["run_parity", "ask_human", "finalize"])
    g.add_conditional_edges("debug", routing.after_agent("run_parity"), ["run_parity", "ask_human", "finalize"])
    g.add_conditional_edges("run_parity", routing.after_parity, ["finalize", "debug", "ask_human"])
    g.add_conditional_edges(
        "ask_human", routing.after_ask_human, ["plan", "implement", "debug", "ask_human", "finalize"]
    )
    g.add_edge("finalize", END)
    return g.compile(checkpointer=checkpointer)


def make_graph() -> Any:
    """Factory for LangGraph's own tools (see langgraph.json); they bring their checkpointer."""
    return build_graph(server_entry=True)
