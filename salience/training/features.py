"""Frozen-backbone features computed once per training image (plain and mirrored) and reused.

With a frozen backbone, most of a CPU training step is the backbone's forward pass, and it gives
the same features every epoch. When ``data.cache_features`` is set (backbone frozen, zoom range
(1, 1), so every sample is an image or its mirror image) the loop computes them once, keeps them
in memory and, with ``data.feature_cache_dir``, on disk under a key that hashes the backbone's
weights, the input size and the image files, so later runs skip the computation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from salience.io.atomic import atomic_path
from salience.training.data import FixationDataset
from salience.training.task import Task


@torch.inference_mode()
def cache_key(task: Task, model: nn.Module, dataset: FixationDataset) -> str:
    """Hash of what the features depend on: backbone weights, which feature maps the task
    takes (their shapes on a first image), input size and image files."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if task.is_backbone(name):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    device = next(model.parameters()).device
    shapes = [list(f.shape) for f in task.encode(model, dataset.plain_image(0)[None].to(device))]
    files = [str(Path(s.path).resolve()) for s in dataset.stimuli]
    digest.update(json.dumps([shapes, list(dataset.input_size), files]).encode())
    return digest.hexdigest()[:24]


class FeatureBank:
    """Per feature level a tensor (n_images, 2, C, h, w): index 1 on dim 1 is the mirror image."""

    def __init__(self, levels: list[Tensor]) -> None:
        self.levels = levels

    @classmethod
    @torch.inference_mode()
    def build(
        cls,
        task: Task,
        model: nn.Module,
        dataset: FixationDataset,
        device: torch.device,
        batch_size: int = 16,
        cache_dir: str | Path | None = None,
        progress: Callable[[Sequence[int]], Sequence[int]] | None = None,
    ) -> FeatureBank:
        """Encode every image of ``dataset`` both ways, or load the result from ``cache_dir``."""
        path = None
        if cache_dir is not None:
            path = Path(cache_dir) / f"features-{cache_key(task, model, dataset)}.pt"
            if path.is_file():
                return cls(torch.load(path, map_location="cpu", weights_only=True))
        was_training = model.training
        model.eval()
        keys = [(i, flip) for i in range(len(dataset)) for flip in (False, True)]
        starts = list(range(0, len(keys), batch_size))
        chunks: list[list[Tensor]] = []
        for start in progress(starts) if progress else starts:
            part = keys[start : start + batch_size]
            images = torch.stack([dataset.plain_image(i, f) for i, f in part]).to(device)
            chunks.append([f.float().cpu() for f in task.encode(model, images)])
        model.train(was_training)
        levels = [
            torch.cat([c[level] for c in chunks]).unflatten(0, (len(dataset), 2))
            for level in range(len(chunks[0]))
        ]  # [(n, 2, C, h, w)]
        if path is not None:
            with atomic_path(path) as tmp:
                torch.save(levels, tmp)
        return cls(levels)

    def lookup(
        self, indices: Sequence[int], flips: Sequence[bool], device: torch.device
    ) -> list[Tensor]:
        """Features of a batch: per level (B, C, h, w) on ``device``."""
        index = torch.as_tensor(list(indices))
        flip = torch.as_tensor([int(f) for f in flips])
        return [level[index, flip].to(device, non_blocking=True) for level in self.levels]
