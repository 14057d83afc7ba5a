"""Training run configs (training/config.py): typed validation with clear messages, the shipped recipes."""

from __future__ import annotations

import pytest
from test_train import write_config

from vitpose_plus.training.config import load_training_config


def test_config_validation_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key 'learning_rat' \(did you mean 'learning_rate'\?\)"):
        load_training_config(write_config(tmp_path, optimization={"learning_rat": 1.0}))
    with pytest.raises(FileNotFoundError,
                       match=r"datasets\[0\] \('coco'\)\.train\.annotations = .*missing\.json' does not exist"):
        load_training_config(write_config(tmp_path, datasets=[
            {"name": "coco", "train": {"annotations": "missing.json", "images": "."}}]))
    with pytest.raises(ValueError, match=r"needs 'train' files or 'synthetic'"):
        load_training_config(write_config(tmp_path, datasets=[{"name": "coco"}]))
    with pytest.raises(ValueError, match=r"optimization.schedule = 'linear': expected 'step' or 'cosine'"):
        load_training_config(write_config(tmp_path, optimization={"schedule": "linear"}))
    with pytest.raises(FileNotFoundError, match=r"No such training config .*nope.yaml"):
        load_training_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("recipe", ["vitpose_plus_small_six_datasets", "vitpose_plus_base_six_datasets",
                                    "vitpose_plus_large_six_datasets", "vitpose_plus_huge_six_datasets",
                                    "finetune_coco", "finetune_custom_keypoints"])
def test_shipped_recipes_parse_and_name_the_missing_files(recipe):
    import os

    from vitpose_plus.training.config import CONFIG_DIR

    with pytest.raises(FileNotFoundError, match=r"= '/path/to/.*' does not exist"):
        load_training_config(os.path.join(CONFIG_DIR, f"{recipe}.yaml"))


