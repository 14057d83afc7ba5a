"""Bottom-up training transform (`training/bottom_up_transforms.py`): hand-computed geometry, masks, the flip, and a
random sample against a transcription of the original `BottomUpRandomAffine` / `BottomUpRandomFlip`."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from test_bottom_up_codec import _original_affine

from vitpose_plus.modeling import get_dataset_spec
from vitpose_plus.modeling.bottom_up_codec import encode_joints, generate_heatmaps
from vitpose_plus.training.bottom_up_transforms import (
    BottomUpCollator,
    BottomUpTrainTransform,
    ignore_mask,
    instance_joints,
)


def _keypoints(points: dict[int, tuple[float, float]], k: int = 17) -> list[float]:
    flat = [0.0] * (3 * k)
    for idx, (x, y) in points.items():
        flat[3 * idx : 3 * idx + 3] = [x, y, 2]
    return flat


def _fixed(spec: str = "coco", **kwargs) -> BottomUpTrainTransform:
    """No randomness: scale 1, rotation 0, no translation, no flip."""
    settings = {"scale_range": (1.0, 1.0), "rotation_factor": 0.0, "translation_factor": 0.0, "flip_prob": 0.0}
    return BottomUpTrainTransform(spec, **{**settings, **kwargs})


def _image(height=256, width=256, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_fixed_geometry_hand_computed():
    image = _image()
    person = {"keypoints": _keypoints({0: (100.6, 50.2), 16: (255.0, 3.9)}), "iscrowd": 0, "num_keypoints": 2,
              "bbox": [90, 40, 170, 30], "area": 100.0}
    out = _fixed()(image, [person], rng=np.random.default_rng(0))
    assert out["pixel_values"].shape == (3, 512, 512) and out["pixel_values"].dtype == np.float32
    assert out["labels"].shape == (17, 128, 128) and out["label_mask"].shape == (128, 128)
    assert out["label_joints"].shape == (30, 17, 2) and out["label_joints"].dtype == np.int64
    # 256 x 256 image: the input is x 2, the heatmap x 0.5; (100.6, 50.2) -> (50.3, 25.1) -> peak on (50, 25)
    np.testing.assert_allclose(out["joints"][0, 0], [50.3, 25.1, 2], rtol=1e-6)
    assert out["labels"][0, 25, 50] == 1.0 and out["labels"][0].sum() > 1
    # (255, 3.9) -> (127.5, 1.95) -> (127, 1)
    assert out["labels"][16, 1, 127] == 1.0
    assert out["label_joints"][0, :2].tolist() == [[25 * 128 + 50, 1], [16 * 128 * 128 + 1 * 128 + 127, 1]]
    assert out["label_mask"].min() == 1.0  # nothing to ignore, and the crop covers the whole image
    expected = cv2.warpAffine(image, np.array([[2.0, 0, 0], [0, 2.0, 0]]), (512, 512))
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_allclose(out["pixel_values"], ((expected / 255.0 - mean) / std).transpose(2, 0, 1), atol=1e-5)
    assert not out["flipped"] and out["rotation"] == 0.0 and out["scale"] == 1.0


def test_masks_of_crowds_and_unlabelled_persons():
    height = width = 256
    crowd = np.zeros((height, width), np.uint8, order="F")
    crowd[:64] = 1  # image rows 0..63 -> heatmap rows 0..31
    uncompressed = {"counts": [], "size": [height, width]}
    flat = crowd.flatten(order="F")
    run, value = 0, 0
    for v in flat:  # uncompressed column-major RLE, as COCO stores crowds
        if v != value:
            uncompressed["counts"].append(run)
            run, value = 0, v
        run += 1
    uncompressed["counts"].append(run)
    instances = [
        {"keypoints": _keypoints({0: (10, 200)}), "iscrowd": 0, "num_keypoints": 1,
         "segmentation": [[0, 0, 255, 0, 255, 255, 0, 255]]},  # labelled: never masked
        {"iscrowd": 1, "num_keypoints": 0, "segmentation": uncompressed, "keypoints": [0] * 51},
        {"iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 51,
         "segmentation": [[128, 128, 192, 128, 192, 192, 128, 192]]},  # unlabelled person: masked
        {"iscrowd": 0, "num_keypoints": 0, "keypoints": [0] * 51},  # no segmentation: nothing masked
    ]
    mask = ignore_mask(instances, height, width)
    assert not mask[:64].any() and mask[64:120].all()
    assert not mask[140, 140] and mask[100, 100] and mask[200, 220]
    # compressed RLE gives the same
    instances[1] = {**instances[1], "segmentation": mask_utils.encode(crowd)}
    np.testing.assert_array_equal(ignore_mask(instances, height, width), mask)
    out = _fixed()(_image(), instances, rng=np.random.default_rng(0))
    # heatmap row y samples image row 2y: rows 0..31 are in the crowd
    assert not out["label_mask"][:32].any() and out["label_mask"][32:64].all()
    # the crowd without keypoints is dropped from the joints, the unlabelled non-crowd persons are kept
    assert instance_joints(instances, 17).shape == (3, 17, 3)
    assert out["label_joints"][0, 0].tolist() == [100 * 128 + 5, 1] and not out["label_joints"][1:].any()


def test_flip_swaps_left_and_right_on_the_heatmap_grid():
    person = {"keypoints": _keypoints({1: (100.6, 50.2)}), "iscrowd": 0, "num_keypoints": 1}
    out = _fixed(flip_prob=1.0)(_image(), [person], rng=np.random.default_rng(0))
    assert out["flipped"]
    # left_eye (1) at heatmap (50.3, 25.1) becomes right_eye (2) at x = 127 - 50.3 = 76.7
    np.testing.assert_allclose(out["joints"][0, 2], [76.7, 25.1, 2], rtol=1e-5)
    assert out["joints"][0, 1].tolist() == [127.0, 0.0, 0.0]  # the unlabelled joint is mirrored too, as the original
    assert out["labels"][2, 25, 76] == 1.0 and not out["labels"][1].any()
    plain = _fixed()(_image(), [person], rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out["pixel_values"], plain["pixel_values"][:, :, ::-1])


def _original_sample(image, joints, mask, seed, flip_index, input_size=512, output_size=128):
    """Transcription of the original BottomUpRandomAffine (non-UDP) + BottomUpRandomFlip with numpy's legacy
    randint semantics (float bounds truncated), drawing from a Generator in the original's order."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    center = np.array((width / 2, height / 2))
    img_scale = np.array([width, height], dtype=np.float32)
    aug_scale = rng.random() * (1.5 - 0.75) + 0.75
    img_scale *= aug_scale
    aug_rot = (rng.random() * 2 - 1) * 30
    dx = rng.integers(int(-40 * img_scale[0] / 200.0), int(40 * img_scale[0] / 200.0))
    dy = rng.integers(int(-40 * img_scale[1] / 200.0), int(40 * img_scale[1] / 200.0))
    center[0] += dx
    center[1] += dy

    def get_scale(size, out):  # 'short'
        w, h = size
        if w / out < h / out:
            return np.array([w, w / out * out], dtype=np.float32)
        return np.array([h / out * out, h], dtype=np.float32)

    mat_output = _original_affine(center, get_scale(img_scale, output_size) / 200.0, aug_rot, (output_size,) * 2)
    mask = cv2.warpAffine((mask * 255).astype(np.uint8), mat_output, (output_size, output_size)) / 255
    mask = (mask > 0.5).astype(np.float32)
    joints = joints.copy()
    flat = joints[:, :, 0:2].reshape(-1, 2)
    joints[:, :, 0:2] = (np.concatenate((flat, flat[:, 0:1] * 0 + 1), axis=1) @ mat_output.T).reshape(
        joints[:, :, 0:2].shape)
    mat_input = _original_affine(center, get_scale(img_scale, input_size) / 200.0, aug_rot, (input_size,) * 2)
    image = cv2.warpAffine(image, mat_input, (input_size, input_size))
    if rng.random() < 0.5:
        image = image[:, ::-1]
        mask = mask[:, ::-1]
        joints = joints[:, flip_index]
        joints[:, :, 0] = output_size - joints[:, :, 0] - 1
    return image, joints, mask


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_sample_equals_the_original_pipeline(seed):
    rng = np.random.default_rng(100 + seed)
    image = _image(200, 300, seed)
    instances = []
    for _ in range(3):
        points = {k: (rng.uniform(0, 300), rng.uniform(0, 200)) for k in rng.choice(17, 9, replace=False).tolist()}
        instances.append({"keypoints": _keypoints(points), "iscrowd": 0, "num_keypoints": len(points)})
    instances.append({"iscrowd": 1, "num_keypoints": 0, "keypoints": [0] * 51,
                      "segmentation": [[10, 10, 120, 10, 120, 90, 10, 90]]})
    transform = BottomUpTrainTransform("coco")
    out = transform(image, instances, rng=np.random.default_rng(seed))
    joints = instance_joints(instances, 17)
    mask = ignore_mask(instances, 200, 300)
    exp_image, exp_joints, exp_mask = _original_sample(image, joints, mask, seed, transform.flip_index)
    np.testing.assert_allclose(out["joints"], exp_joints, atol=1e-4)
    np.testing.assert_array_equal(out["label_mask"], exp_mask)
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    np.testing.assert_allclose(out["pixel_values"], ((exp_image / 255.0 - mean) / std).transpose(2, 0, 1),
                               atol=1e-5)
    np.testing.assert_array_equal(out["labels"], generate_heatmaps(out["joints"], 17, (128, 128)))
    np.testing.assert_array_equal(out["label_joints"], encode_joints(out["joints"], 17, (128, 128)))
    assert 0 < out["label_mask"].mean() < 1 and out["labels"].max() == 1.0


def test_seeded_samples_are_reproducible():
    instances = [{"keypoints": _keypoints({0: (50, 60), 5: (80, 90)}), "iscrowd": 0, "num_keypoints": 2}]
    transform = BottomUpTrainTransform("coco")
    a = transform(_image(), instances, rng=np.random.default_rng(5))
    b = transform(_image(), instances, rng=np.random.default_rng(5))
    c = transform(_image(), instances, rng=np.random.default_rng(6))
    for key in ("pixel_values", "labels", "label_mask", "label_joints"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["pixel_values"], c["pixel_values"])
    seeded = BottomUpTrainTransform("coco", seed=3)
    np.testing.assert_array_equal(seeded(_image(), instances)["labels"],
                                  BottomUpTrainTransform("coco", seed=3)(_image(), instances)["labels"])


@pytest.mark.parametrize("name", ["aic", "ap10k", "coco_wholebody"])
def test_other_layouts(name):
    spec = get_dataset_spec(name)
    k = spec.num_keypoints
    a, b = spec.flip_pairs[0]
    person = {"keypoints": _keypoints({a: (100.6, 50.2)}, k), "iscrowd": 0, "num_keypoints": 1}
    out = _fixed(spec=name, flip_prob=1.0, dataset_index=3, pad_to=133)(_image(), [person])
    assert out["labels"].shape == (133, 128, 128) and out["label_joints"].shape == (30, 133, 2)
    assert out["labels"][b, 25, 76] == 1.0 and not out["labels"][k:].any()
    assert out["label_joints"][0, 0].tolist() == [b * 128 * 128 + 25 * 128 + 76, 1]
    assert out["dataset_index"] == 3


def test_collator_pads_keypoints():
    coco = _fixed()(_image(), [{"keypoints": _keypoints({3: (20, 30)}), "num_keypoints": 1}])
    aic = _fixed(spec="aic", dataset_index=1)(_image(), [{"keypoints": _keypoints({13: (20, 30)}, 14)}])
    batch = BottomUpCollator(17)([coco, aic])
    assert batch["pixel_values"].shape == (2, 3, 512, 512) and batch["labels"].shape == (2, 17, 128, 128)
    assert batch["label_mask"].shape == (2, 128, 128) and batch["label_joints"].shape == (2, 30, 17, 2)
    assert batch["label_joints"].dtype == torch.long and batch["dataset_index"].tolist() == [0, 1]
    assert not batch["labels"][1, 14:].any()
    assert batch["label_joints"][1, 0, 0].tolist() == [13 * 128 * 128 + 15 * 128 + 10, 1]
    with pytest.raises(ValueError, match="more than the model's 14"):
        BottomUpCollator(14)([coco])


def test_bad_annotations_raise_clear_errors():
    transform = _fixed()
    with pytest.raises(ValueError, match=r"'keypoints' has 6 values, expected 51"):
        transform(_image(), [{"keypoints": [1, 2, 2, 3, 4, 2]}])
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\)"):
        transform(np.zeros((10, 10), np.uint8), [])
    with pytest.raises(ValueError, match="instance 0: 'segmentation' must be a list of polygons or an RLE dict"):
        transform(_image(), [{"iscrowd": 1, "segmentation": 5}])
    with pytest.raises(ValueError, match="pad_to=10 is smaller than the 17 keypoints"):
        BottomUpTrainTransform("coco", pad_to=10)
