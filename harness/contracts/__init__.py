"""The add-model contracts as pydantic models, plus packet loading and path rules.

The names below load on first use (PEP 562), so a command that needs none of them (`harness
--help`, `harness runs`) does not pay for building every pydantic model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ComponentType": "common", "DecisionType": "common", "Mode": "common", "NextStep": "common",
    "PacketError": "common", "ParityStatus": "common", "Problem": "common",
    "EscapeHatch": "escape_hatch", "StateSnapshot": "escape_hatch",
    "ComponentParity": "handoff", "ComponentSkillHandoff": "handoff", "ConversionRetryRequest": "handoff",
    "HandoffKeyDumps": "handoff", "pytest_counts": "handoff",
    "load_document": "loading", "load_packet": "loading",
    "ComponentContext": "packet", "Conversion": "packet", "OfficialDefinitionFile": "packet",
    "OfficialInstantiationFile": "packet", "PrototypeKeyDumps": "packet",
    "bucket_for": "paths", "check_packet_paths": "paths",
    "PortStatus": "port_status", "PortStatusError": "port_status",
    "ALLOWED_TOKEN_ENV_VARS": "secrets", "find_secret": "secrets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:
    from harness.contracts.common import (ComponentType, DecisionType, Mode, NextStep, PacketError,  # noqa: F401
                                          ParityStatus, Problem)
    from harness.contracts.escape_hatch import EscapeHatch, StateSnapshot  # noqa: F401
    from harness.contracts.handoff import (ComponentParity, ComponentSkillHandoff, ConversionRetryRequest,  # noqa: F401
                                           HandoffKeyDumps, pytest_counts)
    from harness.contracts.loading import load_document, load_packet  # noqa: F401
    from harness.contracts.packet import (ComponentContext, Conversion, OfficialDefinitionFile,  # noqa: F401
                                          OfficialInstantiationFile, PrototypeKeyDumps)
    from harness.contracts.paths import bucket_for, check_packet_paths  # noqa: F401
    from harness.contracts.port_status import PortStatus, PortStatusError  # noqa: F401
    from harness.contracts.secrets import ALLOWED_TOKEN_ENV_VARS, find_secret  # noqa: F401
