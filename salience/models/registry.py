"""Model registry: every model is created by name, every checkpoint loaded by one function.

Two questions, one place each:

* ``create_model(name, pretrained=False, **overrides)`` builds the model registered as ``name``:
  a network (``nn.Module``) for the neural families, a density model for the baselines.
  ``pretrained=True`` loads the weights shipped inside the package where there are any.
* ``load_pretrained(name)`` is the registered model ready to predict (a neural one with the
  weights shipped inside the package).
* ``load_checkpoint(path, condition=None, device=None)`` rebuilds the trained model a weight file
  describes and returns it as a :class:`~salience.models.base.DensityModel`, ready to predict:
  the file's metadata names its family (the key of its config), and the family's density class
  does the rest. The Predictor, ``salience eval`` and training all load through it.

A :class:`Family` is the record of one model family: the module whose import registers its
variants, the metadata key of its checkpoints, its density class and its training task (the last
two as ``"module:attribute"`` strings, imported on use, so the registry imports no model code and
the model layer never imports the training layer). :data:`FAMILIES` lists them all.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from salience.models.base import DensityModel


@dataclass(frozen=True)
class Family:
    """One model family: where it lives and how its checkpoints and training are found."""

    name: str
    module: str  # importing it registers the family's variants
    config_key: str | None = None  # safetensors metadata key of its checkpoints' config
    density: str | None = None  # "module:Class" with from_checkpoint(path, condition, device)
    task: str | None = None  # "module:Class" of its training task
    combines: bool = False  # its models mix shipped models of other families (no own weights)

    @property
    def baseline(self) -> bool:
        """Whether its models are baselines: no weights file, nothing shipped to combine."""
        return self.config_key is None and not self.combines

    def density_class(self) -> Any:
        """The class that runs a trained model of this family as a density model."""
        return _resolve(self.density, f"{self.name} models have no checkpoints")

    def task_class(self) -> Any:
        """The family's training task class."""
        return _resolve(self.task, f"{self.name} models are not trained by 'salience train'")


FAMILIES: tuple[Family, ...] = (
    # baselines first: creating one never pays for importing torch
    Family("baselines", "salience.models.baselines"),
    Family(
        "dense",
        "salience.models.dense",
        "dense_config",
        "salience.models.dense.density:DenseDensity",
        "salience.training.dense:DenseTask",
    ),
    Family(
        "saltr",
        "salience.models.saltr",
        "saltr_config",
        "salience.models.saltr.density:SaltrDensity",
        "salience.training.saltr:SaltrTask",
    ),
    Family(
        "sum",
        "salience.models.sum",
        "sum_config",
        "salience.models.sum.density:SumDensity",
        "salience.training.sum:SumTask",
    ),
    # mixtures of shipped models of the families above, defined in code (no checkpoints)
    Family("mixtures", "salience.models.mixture", combines=True),
)

_FACTORIES: dict[str, Callable[..., Any]] = {}
_DESCRIPTIONS: dict[str, str] = {}
_FAMILY_OF: dict[str, Family] = {}


def _resolve(target: str | None, missing: str) -> Any:
    if target is None:
        raise ValueError(missing)
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


def register_model(
    name: str, description: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator: register ``factory(pretrained=False, **overrides)`` under ``name``; its family
    is the one whose module defines the factory."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        if name in _FACTORIES and _FACTORIES[name] is not factory:
            raise ValueError(f"model {name!r} is already registered")
        _FACTORIES[name] = factory
        summary = (factory.__doc__ or "").strip().split("\n\n")[0]  # the first paragraph
        _DESCRIPTIONS[name] = description or " ".join(summary.split())
        for family in FAMILIES:
            if factory.__module__ == family.module or factory.__module__.startswith(
                family.module + "."
            ):
                _FAMILY_OF[name] = family
        return factory

    return wrap


def _load_builtin(until: str | None = None) -> None:
    """Import the families' modules, stopping early once ``until`` is registered."""
    for family in FAMILIES:
        if until is not None and until in _FACTORIES:
            return
        try:
            importlib.import_module(family.module)
        except ModuleNotFoundError as exc:
            # A family whose optional dependency (e.g. torch) is missing is simply absent;
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


def _known(name: str) -> None:
    _load_builtin(until=name)
    if name not in _FACTORIES:
        known = ", ".join(sorted(_FACTORIES))
        raise KeyError(f"unknown model {name!r}; registered models: {known}")


def create_model(name: str, pretrained: bool = False, **overrides: Any) -> Any:
    """Build the model registered as ``name`` (a network for the neural families)."""
    _known(name)
    return _FACTORIES[name](pretrained=pretrained, **overrides)


def family_of(name: str) -> Family:
    """The family of the registered model ``name``."""
    _known(name)
    if name not in _FAMILY_OF:
        raise KeyError(f"model {name!r} belongs to no family of salience.models.registry.FAMILIES")
    return _FAMILY_OF[name]


def shipped_weights(name: str) -> Path:
    """Path of weights shipped inside the package (``salience/weights/NAME.safetensors``)."""
    path = Path(str(resources.files("salience") / "weights" / f"{name}.safetensors"))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no weights named {name!r} ship with this installation (the shipped models "
            "are listed by 'salience models'; a source checkout has them under salience/weights/)"
        )
    return path


def load_pretrained(
    name: str, condition: str | int | None = None, device: Any = None
) -> DensityModel:
    """The registered model ``name`` ready to predict: a baseline as :func:`create_model` makes
    it, a mixture (:mod:`salience.models.mixture`) of shipped models with their weights, a
    neural model with the weights shipped for it (an error if none ship)."""
    family = family_of(name)
    if family.combines:
        return create_model(name, pretrained=True, condition=condition, device=device)
    if family.baseline:
        if condition is not None:
            raise ValueError(f"{name} is a baseline: it takes no condition")
        return create_model(name)
    return load_checkpoint(shipped_weights(name), condition, device)


def load_checkpoint(
    path: str | Path, condition: str | int | None = None, device: Any = None
) -> DensityModel:
    """The trained model in a weight file written by ``salience train`` or ``salience export``,
    as a density model predicting for ``condition`` (a kind of data it was trained on; default
    eye tracking on natural images), on ``device`` (default: the CPU). Errors name the file."""
    from salience.models.metadata import read_metadata

    metadata = read_metadata(path)
    for family in FAMILIES:
        if family.config_key is not None and family.config_key in metadata:
            return family.density_class().from_checkpoint(path, condition=condition, device=device)
    keys = ", ".join(f.config_key for f in FAMILIES if f.config_key)
    raise ValueError(
        f"{path}: not a salience checkpoint (its metadata has none of {keys}; "
        "write one with 'salience train' or 'salience export')"
    )
