"""How the suite is shared among parallel workers (scripts/test.sh: `pytest -n N --dist loadfile`).

The tests of one module stay together on one worker, so that its module fixtures are made once,
except the tests of SPREAD modules (many, slow, independent of each other, with cheap module
fixtures): they go one by one to whichever worker is free. The modules that take longest are
handed out first, then the others in file order, then the tests of any other spread module, so
that no long module is left running alone at the end. Both lists come from the durations
scripts/test.sh prints. (xdist's own `xdist_group` marks cannot be used: they rename test ids in
a way pytest 9.2 no longer allows.)
"""

from __future__ import annotations

import pytest
from xdist.scheduler import LoadScopeScheduling

SPREAD = ("tests/test_adversarial_verdict.py", "tests/test_adversarial_isolation.py", "tests/test_verify_isolation.py",
          "tests/test_evals_baselines.py")
LONGEST_FIRST = (
    "tests/test_evals_baselines.py",
    "tests/test_fresh_install.py",
    "tests/test_fixture_example.py",
    "tests/test_evals_ray.py",
)


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


class ModuleScheduling(LoadScopeScheduling):
    """A work unit is a module, or a single test of a SPREAD module; units go out in collection order."""

    def __init__(self, config: pytest.Config, log=None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # keep the order pytest_collection_modifyitems made

    def _split_scope(self, nodeid: str) -> str:
        return nodeid if _module(nodeid) in SPREAD else _module(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)  # optional: `-p no:xdist` drops the hook's spec
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> ModuleScheduling | None:
    return ModuleScheduling(config, log) if config.getvalue("dist") == "loadfile" else None


def _turn(item: pytest.Item) -> int:
    module = _module(item.nodeid)
    if module in LONGEST_FIRST:
        return LONGEST_FIRST.index(module)
    return len(LONGEST_FIRST) + (1 if module in SPREAD else 0)  # spread tests fill in at the end


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker; every worker sorts alike
        items.sort(key=_turn)  # stable: file order within each turn
