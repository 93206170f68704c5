"""Provider-neutral types shared by every model: messages, tool calls, usage, the Model base.

Each provider converts the neutral message list to its own wire form, so the agent loop,
the trajectory and the checkpointed graph state never see an SDK object.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

ROLES = ("planner", "implementer", "debugger")


class ModelError(RuntimeError):
    """A model call failed (bad request, auth, retries exhausted, script error).

    `resumable`: the cause lies outside the port and may go away (the provider is down, the
    key was refused or is missing): the run stops resumable instead of ending."""

    def __init__(self, message: str, *, provider: str = "", status: int | None = None,
                 resumable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        self.resumable = resumable


class Usage(BaseModel):
    """Tokens of one call (or a sum). `input_tokens` excludes cached reads and cache writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
        )


class ToolCall(BaseModel):
    """One tool call. `args` is a raw string when the model sent arguments that are not JSON."""

    id: str
    name: str
    args: dict[str, Any] | str = Field(default_factory=dict)


class AssistantTurn(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str = ""


# --- the neutral conversation -------------------------------------------------------------


class UserMessage(BaseModel):
    kind: Literal["user"] = "user"
    text: str


class AssistantMessage(BaseModel):
    kind: Literal["assistant"] = "assistant"
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)


class ToolResultMessage(BaseModel):
    kind: Literal["tool_result"] = "tool_result"
    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


Message = Annotated[Union[UserMessage, AssistantMessage, ToolResultMessage], Field(discriminator="kind")]


class SystemBlock(BaseModel):
    """One block of the system prompt. Stable blocks form the cacheable prefix."""

    model_config = ConfigDict(frozen=True)
    text: str
    stable: bool = True


SystemPrompt = Union[str, list[Union[str, SystemBlock]]]


def system_blocks(system: SystemPrompt) -> list[SystemBlock]:
    """Normalise the caller's system prompt to a list of blocks (plain strings are stable)."""
    if isinstance(system, str):
        return [SystemBlock(text=system)] if system else []
    return [b if isinstance(b, SystemBlock) else SystemBlock(text=b) for b in system]


def system_text(system: SystemPrompt) -> str:
    return "\n\n".join(b.text for b in system_blocks(system))


class ToolSpec(BaseModel):
    """A tool as offered to a model: name, description and a JSON Schema for its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]


def approx_tokens(text: str) -> int:
    """Rough token count used for budgets and context trimming (about 4 characters a token)."""
    return (len(text) + 3) // 4


class Model:
    """The interface every provider implements.

    `name` is the spec's model name (used for pricing), `context_window` the model's context
    size in tokens. Usage is also summed per role in `usage_by_role`.
    """

    name: str = "model"
    context_window: int = 200_000
    provider: str = "model"

    def __init__(self) -> None:
        self.usage_by_role: dict[str, Usage] = {}

    def complete(
        self,
        role: str,
        system: SystemPrompt,
        messages: list[Message],
        tools: list[ToolSpec],
    ) -> AssistantTurn:
        turn = self._complete(role, system, messages, tools)
        self.usage_by_role[role] = self.usage_by_role.get(role, Usage()) + turn.usage
        return turn

    def _complete(
        self, role: str, system: SystemPrompt, messages: list[Message], tools: list[ToolSpec]
    ) -> AssistantTurn:
        raise NotImplementedError

    def cost_usd(self, usage: Usage) -> float:
        """Dollar cost of `usage`; models without a price (scripted, human, replay) cost 0."""
        return 0.0

    def estimate_cost_usd(self, input_tokens: int, output_tokens: int) -> float:
        """Upper-bound cost of a call with this many (uncached) input and output tokens."""
        return self.cost_usd(Usage(input_tokens=input_tokens, output_tokens=output_tokens))


def sdk_client(client_cls: Any, *, provider: str, key_env: str, url_env: str, api_key: str | None,
               base_url: str | None, timeout_s: float) -> Any:
    """An SDK client with the key and server from the arguments or the environment. Only a
    self-hosted compatible server (a base URL) may go without a key. Retries are the harness's
    own (see retry.py), so the SDK must not retry on its own."""
    key = api_key or os.environ.get(key_env)
    url = base_url or os.environ.get(url_env) or None
    if not key and url is None:
        raise ModelError(f"{provider}: no API key; set {key_env} (or give a base_url for a local server)",
                         provider=provider)
    return client_cls(api_key=key or "no-key-needed-for-this-server", base_url=url, max_retries=0, timeout=timeout_s)
