"""Checkpoints: weights as safetensors, everything else needed to resume as a torch file.

A checkpoint ``NAME`` in a run folder is two files: ``NAME.safetensors`` (the model's state dict
plus string metadata from which the registry rebuilds the model) and ``NAME.state.pt``
(optimizer, scheduler, grad scaler, every RNG, epoch and step). Each file is written atomically
(:func:`salience.io.atomic.atomic_path`), the state first; both record the step, and loading
refuses a pair whose steps differ (a crash between the two writes).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from salience.io.atomic import atomic_path


def weights_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.safetensors"


def state_path(directory: str | Path, name: str) -> Path:
    return Path(directory) / f"{name}.state.pt"


def save_weights(path: str | Path, model: nn.Module, metadata: dict[str, str]) -> None:
    """The model's state dict (on CPU, contiguous) as safetensors with ``metadata``, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_weights(path: str | Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    """State dict and metadata of a safetensors file."""
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    return load_file(str(path)), metadata


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
    """Write ``NAME.state.pt`` (``state`` plus RNG states) then ``NAME.safetensors``.

    ``state`` must hold ``step``; returns the weights' path.
    """
    step = int(state["step"])
    with atomic_path(state_path(directory, name)) as tmp:
        torch.save({**state, "rng": rng_state()}, tmp)
    path = weights_path(directory, name)
    save_weights(path, model, {**metadata, "step": str(step)})
    return path


def load_checkpoint(directory: str | Path, name: str, model: nn.Module) -> dict[str, Any]:
    """Load weights into ``model`` and return the saved state (its ``rng`` is not applied)."""
    tensors, metadata = load_weights(weights_path(directory, name))
    state = torch.load(state_path(directory, name), map_location="cpu", weights_only=False)
    if metadata.get("step") != str(state["step"]):
        raise RuntimeError(
            f"{directory}/{name}: weights are from step {metadata.get('step')}, the training state "
            f"from step {state['step']} (interrupted while saving?)"
        )
    model.load_state_dict(tensors, strict=True)
    return state


def has_checkpoint(directory: str | Path, name: str) -> bool:
    return weights_path(directory, name).is_file() and state_path(directory, name).is_file()
