"""The documentation says what the code does: tables generated from the catalog are current, and the README's code
runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from vitpose_plus.modeling.catalog import checkpoint_table_markdown, plus_results_table_markdown

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_conversion_tables_are_generated_from_the_catalog():
    text = (DOCS / "conversion.md").read_text()
    assert checkpoint_table_markdown() in text
    assert plus_results_table_markdown() in text


def readme_python_blocks() -> list[str]:
    """The README's ```python blocks, in order."""
    text = (DOCS.parent / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_code_runs_as_written(tmp_path):
    """Every Python block of the README, run in order as written in one fresh process (the blocks build on each
    other: the first saves `my-model`), in a folder holding the `people.jpg` they open."""
    blocks = readme_python_blocks()
    assert len(blocks) >= 5
    image = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "people.jpg"), image)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads())}
    code = "\n".join(f"# --- README block {i}\n{block}" for i, block in enumerate(blocks))
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    printed = result.stdout
    assert "torch.Size([4, 133, 64, 48])" in printed
    assert "torch.Size([17, 2]) ['nose', 'left_eye', 'right_eye']" in printed  # pipeline: keypoints, label names
    assert (tmp_path / "my-model" / "preprocessor_config.json").exists()
