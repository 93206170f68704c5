"""The agents: model providers, tools, the agent loop, trajectories and role prompts.

    models/       one interface over Anthropic, OpenAI(-compatible), scripted, human and replay
    providers.py  the registry of model providers `--model PROVIDER:ARG` may name
    tools.py      what an agent can do in the workspace, with per-role tool sets
    lint.py       problems an edit introduced (pyflakes before vs after)
    context.py    the model's trimmed view of a long conversation
    loop.py       run_agent: one role until finish, an escape hatch, or a budget
    trajectory.py the JSONL record of a run (secrets redacted) and its rendering
    prompts.py    the planner, implementer and parity-debugger prompts
"""
