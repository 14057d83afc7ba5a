"""Training data plumbing: per-dataset torch datasets over image rows, a deterministic mixed sampler and the collator.

Reproducibility: the sampler yields `epoch * total + index` codes from a permutation seeded by (seed, epoch), and each
sample's augmentation draws from a generator seeded by (seed, dataset, epoch, index). So batch contents depend only on
the seed and the position in training, not on worker processes or on where a resumed run restarted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from datasets import Image

from vitpose_plus.data import top_down_index, top_down_instances

from .transforms import TopDownTransform


class TopDownTrainingDataset(torch.utils.data.Dataset):
    """The top-down instances of one keypoint dataset (image rows of `load_keypoint_dataset`) through its
    `TopDownTransform`.

    The instances are indexed once without decoding any image (`top_down_index`); images are read as raw files
    (`Image(decode=False)`) so that an unreadable one fails naming its file. Items are addressed by
    `epoch * len(self) + index` so that the augmentation seed includes the epoch.
    """

    def __init__(self, rows: Any, transform: TopDownTransform, seed: int = 0):
        self.rows = rows.cast_column("image", Image(decode=False)) if "image" in rows.column_names else rows
        self.transform = transform
        self.seed = int(seed)
        self.index = top_down_index(rows)

    def __len__(self) -> int:
        return len(self.index)

    def sample(self, index: int, epoch: int) -> dict[str, Any]:
        row_id, instance_id = (int(v) for v in self.index[index])
        row = self.rows[row_id]
        instance = next(i for i in top_down_instances(row) if i.index == instance_id)
        context = (f"dataset {self.transform.spec.name!r}, image_id {row.get('image_id', '?')}, annotation_id "
                   f"{instance.annotation_id}")
        rng = np.random.default_rng([self.seed, self.transform.dataset_index, epoch, index])
        out = self.transform.transform_instance(row["image"], instance, rng=rng, context=context)
        return {key: out[key] for key in ("pixel_values", "labels", "label_weights", "dataset_index")}

    def set_epoch(self, epoch: int) -> None:
        """The epoch of plain-index access (`dataset[i]`, as `transformers.Trainer` reads it)."""
        self.epoch = int(epoch)

    def __getitem__(self, code: int) -> dict[str, Any]:
        code = int(code)
        if code < len(self):  # a plain index (Trainer): the epoch comes from set_epoch
            return self.sample(code, getattr(self, "epoch", 0))
        epoch, index = divmod(code, len(self))
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
