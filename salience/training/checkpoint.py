"""Checkpoints: weights as safetensors, everything else needed to resume as a torch file.

A checkpoint ``NAME`` in a run folder is ``NAME.safetensors`` (the model's state dict plus string
metadata from which the registry rebuilds the model) and a training-state file (optimizer,
scheduler, grad scaler, every RNG, epoch and step) whose name is unique to the save,
``NAME.state-<step>-<random>.pt``, and is recorded in the weights' metadata (``train_state``).

Saving writes the new state file beside the old one, then replaces ``NAME.safetensors`` in one
``os.replace``: that rename is the checkpoint's single commit point. A process killed anywhere
before it leaves the previous checkpoint whole (its weights still name its own state file), one
killed after it leaves the new one; never weights of one step with the state of another. Files
no checkpoint names any more (older state files, temporaries of a killed write) are removed after
each commit. Weights without ``train_state`` come from before this layout: their state is
``NAME.state.pt``, accepted when it records the same step.
"""

from __future__ import annotations

import pickle
import random
import secrets
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from salience.io.atomic import atomic_path
from salience.models.metadata import CheckpointError, load_into, read_metadata, read_tensors

STATE_KEY = "train_state"  # weights metadata: the file name of the checkpoint's training state


def weights_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.safetensors"


def state_path(directory: str | Path, name: str) -> Path:
    """The training state of checkpoint ``name``: the file its weights name, or (for weights
    written before states had unique names, or none at all) ``NAME.state.pt``."""
    directory = Path(directory)
    weights = weights_path(directory, name)
    if weights.is_file():
        recorded = read_metadata(weights).get(STATE_KEY)
        if recorded is not None:
            if Path(recorded).name != recorded or not recorded.startswith(f"{name}.state"):
                raise CheckpointError(f"{weights}: names an odd training state file {recorded!r}")
            return directory / recorded
    return directory / f"{name}.state.pt"


def save_weights(path: str | Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's state dict (on CPU, contiguous) as safetensors with ``metadata``, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """State dict and metadata of a safetensors file; a missing or damaged file is a
    :class:`~salience.models.metadata.CheckpointError` naming it."""
    metadata = read_metadata(path)
    return read_tensors(path), metadata


def rng_state() -> dict[str, Any]:
    """The global generators training draws from: Python, torch CPU and CUDA (NumPy draws come
    from per-sample generators, see :mod:`salience.training.data`)."""
    state = {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: str | Path,
    name: str,
    model: nn.Module,
    metadata: dict[str, str],
    state: dict[str, Any],
) -> Path:
    """Write checkpoint ``name``: a new state file (``state`` plus RNG states), then the weights
    naming it (the commit), then remove what no checkpoint names.

    ``state`` must hold ``step``; returns the weights' path.
    """
    directory = Path(directory)
    step = int(state["step"])
    state_name = f"{name}.state-{step}-{secrets.token_hex(4)}.pt"
    with atomic_path(directory / state_name) as tmp:
        torch.save({**state, "rng": rng_state()}, tmp)
    path = weights_path(directory, name)
    save_weights(path, model, {**metadata, "step": str(step), STATE_KEY: state_name})
    _remove_unnamed(directory, name, keep=state_name)
    return path


def _remove_unnamed(directory: Path, name: str, keep: str) -> None:
    """Delete checkpoint ``name``'s state files other than ``keep`` and the temporaries that
    killed writes of its files left behind."""
    stale = [*directory.glob(f"{name}.state*.pt"), *directory.glob(f".{name}.*.tmp*")]
    for path in stale:
        if path.name != keep:
            path.unlink(missing_ok=True)


def load_checkpoint(directory: str | Path, name: str, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` and return the saved state (its ``rng`` is not applied).

    Any problem (a missing or damaged file, weights that do not fit ``model``, a state from
    another step) is a :class:`~salience.models.metadata.CheckpointError` naming the file.
    """
    weights = weights_path(directory, name)
    tensors, metadata = load_weights(weights)
    path = state_path(directory, name)
    if not path.is_file():
        raise CheckpointError(
            f"{weights}: its training state {path.name} is missing, so the run cannot resume "
            "(start it again without --resume, or initialise from these weights)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, EOFError, OSError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a readable training state ({exc})") from exc
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not a training state (no step recorded)")
    if metadata.get("step") != str(state["step"]):
        raise CheckpointError(
            f"{weights}: weights are from step {metadata.get('step')}, the training state "
            f"{path.name} from step {state['step']} (interrupted while saving?)"
        )
    load_into(model, tensors, weights)
    return state


def has_checkpoint(directory: str | Path, name: str) -> bool:
    """Whether checkpoint ``name`` was written (its weights exist; a damaged or incomplete one
    is reported by :func:`load_checkpoint`, not taken for no checkpoint)."""
    return weights_path(directory, name).is_file()
