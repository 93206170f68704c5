"""The sandbox: the run's git worktree (`workspace`), executors that run commands in it
(`executors`: docker, bwrap, local) and the parity test runner (`pytest_runner`)."""
