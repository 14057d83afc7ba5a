"""Shared fixtures (the helpers themselves live in `helpers.py`); nothing here touches the network."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def pixel_values() -> torch.Tensor:
    return torch.randn(6, 3, 64, 48, generator=torch.Generator().manual_seed(123))
