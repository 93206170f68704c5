"""The add-model contracts as pydantic models, plus packet loading and path rules."""

from harness.contracts.common import (
    ComponentType,
    DecisionType,
    Mode,
    NextStep,
    PacketError,
    ParityStatus,
    Problem,
)
from harness.contracts.escape_hatch import EscapeHatch, StateSnapshot
from harness.contracts.handoff import (
    ComponentParity,
    ComponentSkillHandoff,
    ConversionRetryRequest,
    HandoffKeyDumps,
    pytest_counts,
)
from harness.contracts.loading import load_document, load_packet
from harness.contracts.packet import (
    ComponentContext,
    Conversion,
    OfficialDefinitionFile,
    OfficialInstantiationFile,
    PrototypeKeyDumps,
)
from harness.contracts.paths import bucket_for, check_packet_paths
from harness.contracts.port_status import PortStatus, PortStatusError
from harness.contracts.secrets import ALLOWED_TOKEN_ENV_VARS, find_secret

__all__ = [
    "ALLOWED_TOKEN_ENV_VARS",
    "ComponentContext",
    "ComponentParity",
    "ComponentSkillHandoff",
    "ComponentType",
    "Conversion",
    "ConversionRetryRequest",
    "DecisionType",
    "EscapeHatch",
    "HandoffKeyDumps",
    "Mode",
    "NextStep",
    "OfficialDefinitionFile",
    "OfficialInstantiationFile",
    "PacketError",
    "ParityStatus",
    "PortStatus",
    "PortStatusError",
    "Problem",
    "PrototypeKeyDumps",
    "StateSnapshot",
    "bucket_for",
    "check_packet_paths",
    "find_secret",
    "load_document",
    "load_packet",
    "pytest_counts",
]
