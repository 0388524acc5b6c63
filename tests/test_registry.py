"""The model registry: every registered model builds, unknown names fail clearly."""

from __future__ import annotations

import pytest

import salience
from salience.models.registry import describe_models, family_of, register_model


def test_baselines_are_registered() -> None:
    names = salience.list_models()
    for name in ("uniform", "center-bias", "center-bias-gaussian", "gold-standard"):
        assert name in names
    assert all(describe_models()[n] for n in names)


@pytest.mark.parametrize(
    "name",
    [n for n in salience.list_models() if family_of(n).baseline],
)
def test_every_baseline_builds(name: str) -> None:
    model = salience.create_model(name)
    assert model.name == name


def test_unknown_and_duplicate_names() -> None:
    with pytest.raises(KeyError, match="registered models"):
        salience.create_model("no-such-model")
    with pytest.raises(ValueError, match="already registered"):
        register_model("uniform")(lambda pretrained=False: None)


def test_descriptions_are_whole_summaries() -> None:
    """A description is the factory's first docstring paragraph on one line, never a sentence
    cut at the docstring's first line break."""
    for name, description in describe_models().items():
        assert "\n" not in description and "  " not in description, name
        assert description.endswith((".", ")")), f"{name}: {description!r}"


def test_families_say_what_kind_of_model_they_hold() -> None:
    """Baselines have no weights, mixtures combine shipped models, the rest load checkpoints."""
    assert family_of("center-bias").baseline and family_of("gold-standard").baseline
    assert family_of("ensemble").combines and not family_of("ensemble").baseline
    for name in ("default", "saltr"):
        assert not family_of(name).baseline and family_of(name).config_key is not None
