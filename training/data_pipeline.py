"""Training data plumbing: per-dataset torch datasets, a deterministic mixed sampler and the batch collator.

Reproducibility: the sampler yields `epoch * total + index` codes from a permutation seeded by (seed, epoch), and each
sample's augmentation draws from a generator seeded by (seed, epoch, index). So batch contents depend only on the
seed and the position in training, not on worker processes or on where a resumed run restarted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from vitpose_plus.file_io import decode_image

from .transforms import TopDownTransform


class TopDownTrainingDataset(torch.utils.data.Dataset):
    """One keypoint dataset (rows of `load_keypoint_dataset`) through its `TopDownTransform`.

    Items are addressed by `epoch * len(self) + index` so that the augmentation seed includes the epoch.
    """

    def __init__(self, rows: Any, transform: TopDownTransform, seed: int = 0):
        self.rows = rows
        self.transform = transform
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.rows)

    def sample(self, index: int, epoch: int) -> dict[str, Any]:
        row = self.rows[index]
        context = f"dataset {self.transform.spec.name!r}, row {index}, annotation_id {row.get('annotation_id', '?')}"
        image = decode_image(row["image"], context)
        keypoints = np.asarray(row["keypoints"], dtype=np.float64).reshape(-1, 3)
        rng = np.random.default_rng([self.seed, self.transform.dataset_index, epoch, index])
        center, scale = row.get("center"), row.get("scale")
        out = self.transform.transform_example(image, row["bbox"], keypoints, rng=rng, center=center, scale=scale)
        return {key: out[key] for key in ("pixel_values", "labels", "label_weights", "dataset_index")}

    def __getitem__(self, code: int) -> dict[str, Any]:
        epoch, index = divmod(int(code), len(self))
        return self.sample(index, epoch)


class MixedDataset(torch.utils.data.Dataset):
    """Concatenation of several `TopDownTrainingDataset`s; item codes are `epoch * total + global_index`."""

    def __init__(self, parts: Sequence[TopDownTrainingDataset]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts]).tolist()

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, code: int) -> dict[str, Any]:
        epoch, index = divmod(int(code), len(self))
        part = bisect.bisect_right(self.offsets, index) - 1
        return self.parts[part].sample(index - self.offsets[part], epoch)


class MixedSampler(torch.utils.data.Sampler[int]):
    """Deterministic epoch sampler over a `MixedDataset`.

    Without `ratios` each epoch is a permutation of all samples (batches mix the datasets in proportion to their
    sizes, as the original's shuffled ConcatDataset). With `ratios`, each epoch draws `len(dataset)` samples, dataset d
    with probability proportional to `ratios[d]` (uniform within it, with replacement).

    Set `epoch` before iterating (the training loop does; the attribute is deliberately not called `set_epoch`, so
    that Accelerate's own epoch counter does not override it after a resume).
    """

    def __init__(self, sizes: Sequence[int], seed: int = 0, ratios: Sequence[float] | None = None):
        self.sizes = [int(s) for s in sizes]
        self.total = sum(self.sizes)
        self.seed = int(seed)
        if ratios is not None:
            if len(ratios) != len(self.sizes) or any(r < 0 for r in ratios) or sum(ratios) <= 0:
                raise ValueError(f"ratios must be {len(self.sizes)} non-negative numbers with a positive sum, got "
                                 f"{list(ratios)}.")
        self.ratios = None if ratios is None else [float(r) for r in ratios]
        self.epoch = 0

    def __len__(self) -> int:
        return self.total

    def indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch, 7919])
        if self.ratios is None:
            order = rng.permutation(self.total)
        else:
            probabilities = np.asarray(self.ratios) / sum(self.ratios)
            parts = rng.choice(len(self.sizes), size=self.total, p=probabilities)
            offsets = np.cumsum([0] + self.sizes[:-1])
            within = np.floor(rng.random(self.total) * np.asarray(self.sizes)[parts]).astype(np.int64)
            order = offsets[parts] + within
        return order + epoch * self.total

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices(self.epoch).tolist())


class KeypointCollator:
    """Stack samples into a batch, zero-padding `labels` `(K, h, w)` and `label_weights` `(K,)` to `max_keypoints`.

    Returns `pixel_values` `(B, 3, H, W)`, `labels` `(B, K_max, h, w)`, `label_weights` `(B, K_max)` and
    `dataset_index` `(B,)` — the keyword arguments of `VitPosePlusForPoseEstimation.forward` (also for
    `transformers.Trainer`, with `remove_unused_columns=False`).
    """

    def __init__(self, max_keypoints: int):
        self.max_keypoints = int(max_keypoints)

    def __call__(self, samples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        batch = len(samples)
        first = np.asarray(samples[0]["labels"])
        labels = np.zeros((batch, self.max_keypoints, *first.shape[1:]), dtype=np.float32)
        weights = np.zeros((batch, self.max_keypoints), dtype=np.float32)
        for i, sample in enumerate(samples):
            k = np.asarray(sample["labels"]).shape[0]
            if k > self.max_keypoints:
                raise ValueError(f"A sample has {k} keypoint channels, more than the model's {self.max_keypoints}.")
            labels[i, :k] = sample["labels"]
            weights[i, :k] = np.asarray(sample["label_weights"], dtype=np.float32).reshape(-1)
        return {
            "pixel_values": torch.from_numpy(np.stack([np.asarray(s["pixel_values"]) for s in samples])),
            "labels": torch.from_numpy(labels),
            "label_weights": torch.from_numpy(weights),
            "dataset_index": torch.tensor([int(s["dataset_index"]) for s in samples], dtype=torch.long),
        }
