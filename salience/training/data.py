"""Training samples from salience Datasets: resized, augmented images with fixations that follow.

Pixels and fixations go through one :class:`Transform` (resize to the input size times a zoom,
crop a window, maybe mirror), so a fixation stays on the pixel it was on; fixations leaving the
crop are dropped. Every random draw of a sample comes from a generator seeded by
``(seed, epoch, index)``, so a sample is the same whichever worker, process or resumed run makes
it, and :class:`EpochSampler` can skip the steps an interrupted epoch already took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Sized
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Sampler

from salience.data.dataset import Dataset, Stimulus
from salience.data.windows import fixation_times
from salience.io.images import load_image
from salience.training.config import AugmentConfig

# (normalized points (M, 2), observer index (M,), generator) -> named target arrays; a
# dataset made with ``with_times`` also passes ``times=`` (M, 2) onsets and durations (s)
TargetFn = Callable[..., dict[str, np.ndarray]]


@dataclass(frozen=True)
class Transform:
    """Resize an (H0, W0) image to ``resized``, crop ``out`` at ``offset``, mirror if ``flip``.

    Coordinates are continuous pixels (pixel j covers [j, j + 1)), so resizing scales them,
    cropping shifts them and mirroring maps x to ``width - x``.
    """

    source: tuple[int, int]  # (H0, W0)
    resized: tuple[int, int]  # (H', W')
    offset: tuple[int, int]  # (top, left) of the crop in the resized image
    out: tuple[int, int]  # (h, w)
    flip: bool

    @classmethod
    def draw(
        cls,
        source: tuple[int, int],
        out: tuple[int, int],
        augment: AugmentConfig | None,
        rng: np.random.Generator,
    ) -> Transform:
        """A random transform per ``augment``; ``None`` is the plain resize to ``out``."""
        if augment is None:
            return cls(source, out, (0, 0), out, False)
        zoom = rng.uniform(*augment.scale)
        resized = (max(out[0], round(out[0] * zoom)), max(out[1], round(out[1] * zoom)))
        top = int(rng.integers(0, resized[0] - out[0] + 1))
        left = int(rng.integers(0, resized[1] - out[1] + 1))
        flip = bool(rng.random() < augment.hflip)
        return cls(source, resized, (top, left), out, flip)

    def image(self, image: np.ndarray) -> np.ndarray:
        """uint8 (H0, W0, 3) -> uint8 (h, w, 3)."""
        if image.shape[:2] != self.source:
            raise ValueError(f"image is {image.shape[:2]}, the transform expects {self.source}")
        height, width = self.resized
        resized = np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))
        top, left = self.offset
        crop = resized[top : top + self.out[0], left : left + self.out[1]]  # (h, w, 3)
        return np.ascontiguousarray(crop[:, ::-1] if self.flip else crop)

    def points(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Source pixel coordinates -> output pixel coordinates and the mask of those kept."""
        x = x * (self.resized[1] / self.source[1]) - self.offset[1]
        y = y * (self.resized[0] / self.source[0]) - self.offset[0]
        keep = (x >= 0) & (x < self.out[1]) & (y >= 0) & (y < self.out[0])
        if self.flip:
            x = self.out[1] - x
        return x[keep], y[keep], keep


class FixationDataset(torch.utils.data.Dataset):
    """Images and fixation targets from one or more salience Datasets, concatenated.

    Index with ``(epoch, i)`` (what :class:`EpochSampler` yields) or a plain ``i`` (epoch 0).
    A sample is a dict: ``image`` float (3, h, w) in [0, 1], ``id``, ``index``, ``flip`` (whether
    it was mirrored), ``condition`` (the kind of data of its dataset, from ``conditions``, one
    per dataset; None when not given), and the arrays returned by ``target_fn`` as tensors.
    Without ``augment`` the image is only resized; a sequence gives one per dataset (e.g. no
    mirroring for web pages); ``with_images=False`` leaves it out (training
    on cached features). ``with_times`` hands ``target_fn`` the fixations' onsets and durations
    (onsets derived where the data has none, see :mod:`salience.data.windows`).
    """

    def __init__(
        self,
        datasets: Sequence[Dataset],
        input_size: tuple[int, int],
        target_fn: TargetFn,
        augment: AugmentConfig | Sequence[AugmentConfig | None] | None = None,
        seed: int = 0,
        cache_images: bool = False,
        with_images: bool = True,
        conditions: Sequence[int | None] | None = None,
        with_times: bool = False,
    ) -> None:
        self.stimuli: list[Stimulus] = [s for d in datasets for s in d]
        self.conditions: list[int | None] = _per_image(datasets, conditions, "conditions")
        augments = augment if isinstance(augment, Sequence) else [augment] * len(datasets)
        self.augments: list[AugmentConfig | None] = _per_image(datasets, augments, "augmentations")
        self.input_size = tuple(input_size)
        self.target_fn = target_fn
        self.seed = seed
        self._cache: dict[int, np.ndarray] | None = {} if cache_images else None
        self.with_images = with_images
        self.with_times = with_times

    def __len__(self) -> int:
        return len(self.stimuli)

    def _image(self, index: int) -> np.ndarray:
        if self._cache is None:
            return load_image(self.stimuli[index].path)
        if index not in self._cache:
            self._cache[index] = load_image(self.stimuli[index].path)
        return self._cache[index]

    def plain_image(self, index: int, flip: bool = False) -> Tensor:
        """Image ``index`` resized to the input size, mirrored if ``flip``: (3, h, w) in [0, 1].

        These are the inputs of :class:`~salience.training.features.FeatureBank`; with a zoom
        range of (1, 1) every augmented sample is one of them.
        """
        stim = self.stimuli[index]
        transform = Transform(stim.size, self.input_size, (0, 0), self.input_size, flip)
        return _to_tensor(transform.image(self._image(index)))

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.seed, epoch, index])
        stim = self.stimuli[index]
        transform = Transform.draw(stim.size, self.input_size, self.augments[index], rng)
        xs, ys = stim.fixations()
        x, y, keep = transform.points(xs, ys)
        h, w = self.input_size
        points = np.stack([x / w, y / h], axis=1).reshape(-1, 2)  # (M, 2) normalized
        observers = stim.observer_index()[keep]  # (M,)
        sample = {
            "id": stim.id,
            "index": index,
            "flip": transform.flip,
            "condition": self.conditions[index],
        }
        if self.with_images:
            sample["image"] = _to_tensor(transform.image(self._image(index)))  # (3, h, w)
        extra = {}
        if self.with_times:
            extra["times"] = np.stack(fixation_times(stim), axis=1)[keep]  # (M, 2) onset, duration
        for name, array in self.target_fn(points, observers, rng, **extra).items():
            sample[name] = torch.from_numpy(np.ascontiguousarray(array))
        return sample


def _per_image(datasets: Sequence[Dataset], values: Sequence | None, what: str) -> list:
    """One value per dataset (None: None for all) -> the value of each dataset's images."""
    if values is None:
        values = [None] * len(datasets)
    if len(values) != len(datasets):
        raise ValueError(f"{len(values)} {what} for {len(datasets)} datasets")
    return [v for d, v in zip(datasets, values, strict=True) for _ in d]


def _to_tensor(image: np.ndarray) -> Tensor:
    """uint8 (h, w, 3) -> float (3, h, w) in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255.0)


def collate(samples: list[dict]) -> dict:
    """Stack images (B, 3, h, w); keep ids and per-image targets (variable size) as lists."""
    batch = {key: [s[key] for s in samples] for key in samples[0]}
    if "image" in batch:
        batch["image"] = torch.stack(batch["image"])
    return batch


class EpochSampler(Sampler[tuple[int, int]]):
    """This process's share of every step's batch as ``(epoch, index)``; resumes mid-epoch.

    An epoch is a permutation of the dataset drawn from (seed, epoch) only, cut into
    :attr:`steps` global batches of ``batch_size`` (the remainder is dropped). Each of the
    ``world_size`` processes takes one consecutive slice of ``batch_size / world_size`` of each
    global batch, the process of rank r the r-th, so together they train on exactly the batches
    one process would: a run's data order does not depend on how many processes share it.
    ``set_epoch(epoch, skip)`` starts the next pass after ``skip`` steps, which an interrupted
    epoch had already taken.
    """

    def __init__(
        self,
        dataset: Sized,
        seed: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size % world_size:
            raise ValueError(
                f"train.batch_size {batch_size} (the global batch) is not divisible by the "
                f"{world_size} processes"
            )
        self.size = len(dataset)
        self.seed = seed
        self.steps = self.size // batch_size
        self.batch_size = batch_size
        self.per_process = batch_size // world_size
        self.rank = rank
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def __len__(self) -> int:
        return max(self.steps - self.skip, 0) * self.per_process

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        for step in range(self.skip, self.steps):
            start = step * self.batch_size + self.rank * self.per_process
            for index in order[start : start + self.per_process]:
                yield self.epoch, index
