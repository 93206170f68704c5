"""Verification: everything that decides whether a port is trusted.

The guards read the agent's diff, the evidence builders turn real runs and the git history
into the handoff, and the verdict is the harness's own parity run. The graph and the eval
graders both use this package, so a run and its grade are judged by the same code.
"""
