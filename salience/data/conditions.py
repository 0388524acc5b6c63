"""The kinds of data a model can be trained on and asked to predict for ("conditions").

Eye tracking on natural photos, mouse tracking (a cheaper proxy, SALICON-style) and gaze on user
interfaces (web pages, apps) differ in where people look; SUM-style models take the kind as an
input. The numbers are the token slots of SUM's decoder (Hosseini et al. 2024): slot 2, the
paper's e-commerce images, is kept free and not offered, since no such data exists here.

Torch-free, so the command line can list the kinds without importing a model.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from enum import IntEnum
from pathlib import Path

TOKEN_SLOTS = 4  # the decoder's condition tokens, as in the paper (one slot unused)
METADATA_KEY = "conditions"  # checkpoint metadata: JSON list of the kinds a model was trained on


class Condition(IntEnum):
    """A kind of data; the value is its token slot in a conditioned model."""

    MOUSE_NATURAL = 0  # mouse tracking on natural images (OSIE mouse, SALICON)
    EYE_NATURAL = 1  # eye tracking on natural images (OSIE, NUS Scene, MIT1003, CAT2000)
    USER_INTERFACE = 3  # eye tracking on user interfaces: web pages, apps (EYEVIDO)

    @property
    def kind(self) -> str:
        """The short name used on the command line and in metadata: mouse, eye or ui."""
        return _KINDS[self]

    @property
    def mirror_symmetric(self) -> bool:
        """Whether where people look is the same, mirrored, on the mirrored image: true of
        photos, not of user interfaces (read left to right, laid out by convention). Models are
        trained on mirrored copies, and averaged over the mirror image at test time, only when
        it is."""
        return self != Condition.USER_INTERFACE

    @classmethod
    def parse(cls, value: str | int | Condition) -> Condition:
        """A condition from its short name (``"eye"``), its token slot or itself; a
        ValueError naming the offered kinds otherwise."""
        if isinstance(value, str):
            for condition, kind in _KINDS.items():
                if kind == value.strip().lower():
                    return condition
            raise ValueError(f"unknown condition {value!r}; the kinds are {', '.join(KINDS)}")
        try:
            return cls(int(value))
        except ValueError:
            raise ValueError(
                f"unknown condition {value!r}; the kinds are {', '.join(KINDS)}"
            ) from None


_KINDS = {
    Condition.MOUSE_NATURAL: "mouse",
    Condition.EYE_NATURAL: "eye",
    Condition.USER_INTERFACE: "ui",
}
KINDS = tuple(_KINDS.values())
DEFAULT = Condition.EYE_NATURAL


def encode_trained(conditions: Iterable[Condition | int | str | None]) -> str:
    """The metadata value recording the conditions a model was trained on (``None``, a source
    without one, counts as eye tracking on natural images)."""
    found = {DEFAULT if c is None else Condition.parse(c) for c in conditions}
    return json.dumps([c.kind for c in sorted(found)])


def trained_conditions(metadata: dict[str, str], where: str) -> tuple[Condition, ...]:
    """The conditions a checkpoint was trained on, from its metadata. A checkpoint that does not
    record them predates the record and was trained on eye tracking on natural images."""
    if METADATA_KEY not in metadata:
        return (DEFAULT,)
    try:
        kinds = json.loads(metadata[METADATA_KEY])
        return tuple(Condition.parse(kind) for kind in kinds)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ValueError(f"{where}: its {METADATA_KEY} metadata is malformed: {exc}") from exc


def choose(
    requested: Condition | int | str | None, trained: tuple[Condition, ...], where: str
) -> Condition:
    """The condition to predict for: ``requested`` if the model was trained on it, the default
    (eye tracking on natural images, else the only trained kind) when none is requested; a
    ValueError naming the trained kinds otherwise."""
    if requested is None:
        return DEFAULT if DEFAULT in trained or not trained else trained[0]
    condition = Condition.parse(requested)
    if condition not in trained:
        raise ValueError(
            f"{where} was not trained on condition {condition.kind!r}; it was trained on: "
            + ", ".join(c.kind for c in trained)
        )
    return condition


def condition_path(checkpoint: str | Path, condition: Condition) -> Path:
    """Where a file adding ``condition`` to ``checkpoint`` lives: ``<stem>-<kind>.safetensors``
    beside it (see :mod:`salience.models.dense.conditions`)."""
    path = Path(checkpoint)
    return path.with_name(f"{path.stem}-{condition.kind}{path.suffix}")


def extra_conditions(checkpoint: str | Path) -> tuple[Condition, ...]:
    """The conditions that files beside ``checkpoint`` add, in the order of :class:`Condition`."""
    return tuple(c for c in Condition if condition_path(checkpoint, c).is_file())
