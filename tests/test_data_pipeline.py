"""Training data plumbing (training/data_pipeline.py): the mixed sampler and the collator."""

from __future__ import annotations

import numpy as np

from vitpose_plus.training.data_pipeline import KeypointCollator, MixedSampler


def test_mixed_sampler_is_deterministic_and_proportional():
    sampler = MixedSampler([30, 10], seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(40)) and first == list(sampler)
    sampler.epoch = 1
    second = list(sampler)
    assert sorted(second) == list(range(40, 80)) and [c - 40 for c in second] != first
    weighted = MixedSampler([30, 10], seed=3, ratios=[1, 3])
    codes = np.asarray(list(weighted))
    share_second = np.mean(codes >= 30)
    assert 0.6 < share_second < 0.9  # 3:1 ratio towards the smaller dataset


def test_collator_pads_to_max_keypoints():
    samples = [
        {"pixel_values": np.zeros((3, 8, 6), np.float32), "labels": np.ones((14, 2, 2), np.float32),
         "label_weights": np.ones(14, np.float32), "dataset_index": 1},
        {"pixel_values": np.zeros((3, 8, 6), np.float32), "labels": np.ones((17, 2, 2), np.float32),
         "label_weights": np.ones(17, np.float32), "dataset_index": 0},
    ]
    batch = KeypointCollator(17)(samples)
    assert batch["labels"].shape == (2, 17, 2, 2) and batch["labels"][0, 14:].abs().sum() == 0
    assert batch["label_weights"][0].tolist() == [1.0] * 14 + [0.0] * 3
    assert batch["dataset_index"].tolist() == [1, 0]


