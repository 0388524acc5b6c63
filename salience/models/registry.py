"""Model registry: every model, baseline or network, is created by name.

``create_model(name, pretrained=False, **overrides)`` calls the factory registered under ``name``;
factories take ``pretrained`` (load shipped or downloaded weights) and keyword overrides of the
variant's config. Modules that define models register them on import; :func:`_load_builtin`
imports them lazily so ``import salience`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

_FACTORIES: dict[str, Callable[..., Any]] = {}
_DESCRIPTIONS: dict[str, str] = {}
# Modules whose import registers the built-in models.
_BUILTIN_MODULES = (
    "salience.models.baselines",
    "salience.models.dense",
    "salience.models.saltr",
    "salience.models.sum",
)


def register_model(
    name: str, description: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(pretrained=False, **overrides)`` under ``name``."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _FACTORIES[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory

    return wrap


def _load_builtin(until: str | None = None) -> None:
    """Import the built-in model modules, stopping early once ``until`` is registered.

    Baselines come first, so creating one never pays for importing torch.
    """
    for module in _BUILTIN_MODULES:
        if until is not None and until in _FACTORIES:
            return
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            # A model family whose optional dependency (e.g. torch) is missing is simply absent;
            # a missing module of our own is a bug and must surface.
            if exc.name is None or exc.name.startswith("salience"):
                raise


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    _load_builtin()
    return sorted(_FACTORIES)


def describe_models() -> dict[str, str]:
    """Model name -> one-line description."""
    _load_builtin()
    return {name: _DESCRIPTIONS[name] for name in sorted(_FACTORIES)}


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> Any:
    """Build the model registered as ``name``."""
    _load_builtin(until=name)
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise KeyError(f"unknown model {name!r}; registered models: {known}")
    return _FACTORIES[name](pretrained=pretrained, **overrides)
