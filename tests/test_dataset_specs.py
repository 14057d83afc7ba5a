"""Dataset specs: package data, validation, user files and the model config's dataset list."""

import json

import pytest

from vitpose_plus.modeling.configuration_vitpose_plus import VitPosePlusConfig
from vitpose_plus.modeling.dataset_specs import (
    VITPOSE_PLUS_DATASETS,
    KeypointDatasetSpec,
    builtin_dataset_names,
    get_dataset_spec,
    load_dataset_spec_file,
)


def test_builtin_specs_match_reference_table():
    assert builtin_dataset_names() == VITPOSE_PLUS_DATASETS
    expected = {"coco": (17, 8, True), "aic": (14, 6, False), "mpii": (16, 6, True), "ap10k": (17, 7, False),
                "apt36k": (17, 7, False), "coco_wholebody": (133, 61, False)}
    for name, (k, pairs, udp) in expected.items():
        spec = get_dataset_spec(name)
        assert (spec.num_keypoints, len(spec.flip_pairs), spec.use_udp) == (k, pairs, udp)
        assert len(spec.sigmas) == k and len(spec.upper_or_lower) == k
    assert get_dataset_spec("mpii").use_half_body is False and get_dataset_spec("coco").use_half_body
    coco = get_dataset_spec("coco")
    assert coco.sigmas[:3] == (0.026, 0.025, 0.025) and coco.keypoint_names[13] == "left_knee"
    assert get_dataset_spec("aic").keypoint_names[-2:] == ("head_top", "neck")


def test_flip_permutation_is_an_involution():
    for name in VITPOSE_PLUS_DATASETS:
        perm = get_dataset_spec(name).flip_permutation()
        assert [perm[p] for p in perm] == list(range(len(perm)))
    assert get_dataset_spec("coco").flip_permutation()[:3] == [0, 2, 1]


def test_roundtrip_and_validation_errors():
    spec = get_dataset_spec("ap10k")
    assert KeypointDatasetSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="'sigmas' has 1 entries, expected 2"):
        KeypointDatasetSpec(name="x", keypoint_names=("a", "b"), sigmas=(0.1,))
    with pytest.raises(ValueError, match="not a pair of indices"):
        KeypointDatasetSpec(name="x", keypoint_names=("a", "b"), flip_pairs=((0, 2),))
    with pytest.raises(ValueError, match="uses keypoint 0 twice"):
        KeypointDatasetSpec(name="x", keypoint_names=("a", "b", "c"), flip_pairs=((0, 1), (0, 2)))
    with pytest.raises(ValueError, match="Unknown keypoint dataset 'nope'"):
        get_dataset_spec("nope")


def test_user_spec_files(tmp_path):
    data = {"name": "hand", "keypoints": ["wrist", "tip"], "skeleton": [[0, 1]], "sigmas": [0.03, 0.02],
            "use_udp": False}
    (tmp_path / "h.json").write_text(json.dumps(data))
    spec = load_dataset_spec_file(tmp_path / "h.json")
    assert spec.keypoint_names == ("wrist", "tip") and spec.use_udp is False
    (tmp_path / "h.yaml").write_text("name: hand\nkeypoint_names: [wrist, tip]\nflip_pairs: []\n")
    assert load_dataset_spec_file(tmp_path / "h.yaml").num_keypoints == 2
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        load_dataset_spec_file(tmp_path / "bad.json")
    (tmp_path / "k.json").write_text(json.dumps(dict(data, num_keypoints=3)))
    with pytest.raises(ValueError, match="'num_keypoints' is 3"):
        load_dataset_spec_file(tmp_path / "k.json")


def test_config_dataset_list_built_from_specs():
    custom = KeypointDatasetSpec(name="hand", keypoint_names=("a", "b", "c"))
    config = VitPosePlusConfig(datasets=["coco", custom.to_dict()])
    assert config.dataset_names == ["coco", "hand"] and config.max_num_keypoints == 17
    assert config.dataset_spec("coco") == get_dataset_spec("coco")
    assert config.dataset_spec(1) == custom
