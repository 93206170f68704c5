"""validate_packet: load and check the packet before anything is spent."""

from __future__ import annotations

from harness.graph.nodes.common import Update, timed
from harness.graph.state import RunState
from harness.run_config.validation import validate_run_input
from harness.runs.resources import RunResources


@timed("validate_packet")
def validate_packet(state: RunState, res: RunResources) -> Update:
    """Load and check the packet; a bad packet ends the run with every problem listed."""
    packet, problems = validate_run_input(res.cfg)
    if problems:
        return {"problems": problems, "outcome": "invalid"}
    return {"packet": packet.model_dump(mode="json"), "problems": []}
