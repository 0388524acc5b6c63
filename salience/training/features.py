"""Frozen-backbone features computed once per training image (plain and mirrored) and reused.

With a frozen backbone, most of a CPU training step is the backbone's forward pass, and it gives
the same features every epoch. When ``data.cache_features`` is set (backbone frozen, zoom range
(1, 1), so every sample is an image or its mirror image) the loop computes them once, keeps them
in memory and, with ``data.feature_cache_dir``, on disk (one file per image, in a folder whose
name hashes the backbone's weights and the input size), so later runs skip the computation.
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
    """Hash of what every image's features depend on besides the image: backbone weights,
    which feature maps the task takes (their shapes on a first image) and the input size."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if task.is_backbone(name):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    device = next(model.parameters()).device
    shapes = [list(f.shape) for f in task.encode(model, dataset.plain_image(0)[None].to(device))]
    digest.update(json.dumps([shapes, list(dataset.input_size)]).encode())
    return digest.hexdigest()[:24]


def image_key(path: str | Path) -> str:
    """The cache file name of one image's features: its resolved path, size and mtime hashed."""
    resolved = Path(path).resolve()
    stat = resolved.stat()
    return hashlib.sha256(f"{resolved}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:24]


class FeatureBank:
    """Per feature level a tensor (n_images, 2, C, h, w): index 1 on dim 1 is the mirror image.

    On disk (``cache_dir``) every image has its own file under a folder named by
    :func:`cache_key`, so runs on subsets of the same images (cross-validation folds, a
    ``limit``) share what earlier runs computed.
    """

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
        """Encode every image of ``dataset`` both ways, or load it from ``cache_dir``."""
        files: list[Path | None] = [None] * len(dataset)
        if cache_dir is not None:
            folder = Path(cache_dir) / f"features-{cache_key(task, model, dataset)}"
            folder.mkdir(parents=True, exist_ok=True)
            files = [folder / f"{image_key(s.path)}.pt" for s in dataset.stimuli]
        levels: list[Tensor] = []  # per level (n, 2, C, h, w), allocated at the first image

        def put(index: int, image: list[Tensor]) -> None:  # image: per level (2, C, h, w)
            if not levels:
                levels.extend(torch.empty(len(dataset), *level.shape) for level in image)
            for bank, level in zip(levels, image, strict=True):
                bank[index] = level

        missing = []
        for index, file in enumerate(files):
            if file is not None and file.is_file():
                put(index, torch.load(file, map_location="cpu", weights_only=True))
            else:
                missing.append(index)
        was_training = model.training
        model.eval()
        keys = [(i, flip) for i in missing for flip in (False, True)]
        starts = list(range(0, len(keys), batch_size))
        plain: dict[int, list[Tensor]] = {}  # an image's features while its mirror's are pending
        for start in progress(starts) if progress else starts:
            part = keys[start : start + batch_size]
            images = torch.stack([dataset.plain_image(i, f) for i, f in part]).to(device)
            encoded = task.encode(model, images)  # [(B, C_l, h_l, w_l)]
            for b, (index, flip) in enumerate(part):
                maps = [level[b].float().cpu() for level in encoded]  # [(C_l, h_l, w_l)]
                if not flip:
                    plain[index] = maps
                    continue
                image = [torch.stack(pair) for pair in zip(plain.pop(index), maps, strict=True)]
                put(index, image)
                if files[index] is not None:
                    with atomic_path(files[index]) as tmp:
                        torch.save(image, tmp)
        model.train(was_training)
        return cls(levels)

    def lookup(
        self, indices: Sequence[int], flips: Sequence[bool], device: torch.device
    ) -> list[Tensor]:
        """Features of a batch: per level (B, C, h, w) on ``device``."""
        index = torch.as_tensor(list(indices))
        flip = torch.as_tensor([int(f) for f in flips])
        return [level[index, flip].to(device, non_blocking=True) for level in self.levels]
