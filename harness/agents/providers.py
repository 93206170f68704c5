"""The model providers a run may name in `--model PROVIDER:ARG`: one registry that `make_model`,
the run's input checks (spec, price, key or server), the CLI's help and the eval all read.

A new provider is one module holding its Model and a factory, plus one line here:

    register_provider(Provider("myapi", "myapi:<model>", make="harness.agents.models.myapi:from_spec",
                               argument="model", key_env="MYAPI_API_KEY", url_env="MYAPI_BASE_URL"))

The factory takes `(arg, *, base_url, price, **kwargs)` (arg: what follows the colon) and is
imported only when a model is made, so listing providers imports no SDK. A test or a plugin
may register one at runtime with `@model_provider(...)` on its factory.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal, TypeVar, Union

Ref = Union[str, Callable[..., Any]]
# What follows the colon: a model name (priced), a file that must exist and load, or nothing.
Argument = Literal["model", "file", "none"]


@dataclass(frozen=True)
class Provider:
    name: str
    usage: str  # the spec's form for help texts: "anthropic:<model>", "human"
    make: Ref
    argument: Argument = "model"
    key_env: str | None = None  # an API provider: the variable holding its key ...
    url_env: str | None = None  # ... and the one naming a compatible server
    models_path: str = "/models"  # the GET that shows a compatible server is there
    needs_a_person: bool = False  # someone must answer at a terminal: never in an unattended eval
    sdk: str | None = None  # the module its factory imports when a model is made (the eval's local pool preloads it)

    @property
    def api(self) -> bool:
        """Calls a paid API: needs a price and a key or a server, takes `timeout_s`."""
        return self.key_env is not None

    def factory(self) -> Callable[..., Any]:
        if callable(self.make):
            return self.make
        module, _, attr = self.make.partition(":")
        return getattr(importlib.import_module(module), attr)


_PROVIDERS: dict[str, Provider] = {}


def register_provider(provider: Provider) -> Provider:
    """Add (or replace) a provider under its name."""
    _PROVIDERS[provider.name] = provider
    return provider


F = TypeVar("F", bound=Callable[..., Any])


def model_provider(name: str, usage: str | None = None, **traits: Any) -> Callable[[F], F]:
    """Decorator form of register_provider for a factory defined in the registering module."""

    def register(make: F) -> F:
        register_provider(Provider(name, usage or f"{name}:<model>", make=make, **traits))
        return make

    return register


def provider_names() -> tuple[str, ...]:
    return tuple(_PROVIDERS)


def get_provider(name: str) -> Provider:
    """The provider named `name`; a ValueError listing the registered providers otherwise."""
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown model provider {name!r}; registered: {', '.join(_PROVIDERS)}") from None


def spec_help(unattended: bool = False) -> str:
    """The spec forms for a help text or a message: "anthropic:<model> | ... | human"
    (`unattended`: only those that need no person)."""
    return " | ".join(p.usage for p in _PROVIDERS.values() if not (unattended and p.needs_a_person))


def provider_of(spec: str) -> tuple[Provider, str] | None:
    """(provider, argument) for a well-formed spec; None when no registered provider takes it."""
    name, colon, arg = spec.partition(":")
    provider = _PROVIDERS.get(name)
    if provider is None:
        return None
    if provider.argument == "none":
        return (provider, "") if not colon else None
    return (provider, arg) if arg else None


# The built-in providers: one line each.
register_provider(Provider("anthropic", "anthropic:<model>", make="harness.agents.models.anthropic_model:from_spec",
                           key_env="ANTHROPIC_API_KEY", url_env="ANTHROPIC_BASE_URL", models_path="/v1/models",
                           sdk="anthropic"))
register_provider(Provider("openai", "openai:<model>", make="harness.agents.models.openai_model:from_spec",
                           key_env="OPENAI_API_KEY", url_env="OPENAI_BASE_URL", sdk="openai"))
register_provider(Provider("scripted", "scripted:<file>", make="harness.agents.models.scripted:from_spec",
                           argument="file"))
register_provider(Provider("human", "human", make="harness.agents.models.human:from_spec", argument="none",
                           needs_a_person=True))
register_provider(Provider("replay", "replay:<trajectory.jsonl>", make="harness.agents.models.replay:from_spec",
                           argument="file"))
