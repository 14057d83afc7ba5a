"""The top-down training transform (training/transforms.py) and the training dataset over image rows
(training/data_pipeline.py): the processor's crop, the codec's targets, the original augmentation."""

import os

import numpy as np
import pytest

from vitpose_plus.data.datasets import load_keypoint_dataset, top_down_instances
from vitpose_plus.data.synthetic import make_synthetic_dataset
from vitpose_plus.file_io import decode_image
from vitpose_plus.modeling import VitPosePlusImageProcessor, get_dataset_spec
from vitpose_plus.modeling.keypoint_codecs import box_to_center_scale
from vitpose_plus.training.data_pipeline import TopDownTrainingDataset
from vitpose_plus.training.transforms import TopDownTransform

PROCESSOR = VitPosePlusImageProcessor(datasets=["coco", "mpii"])


@pytest.fixture(scope="module")
def coco_synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_coco")
    ann = make_synthetic_dataset("coco", 6, seed=3, out_dir=out)
    rows = load_keypoint_dataset(ann, out, "coco")
    first = rows[0]
    return rows, decode_image(first["image"]), top_down_instances(first)


def test_transform_outputs_and_eval_geometry(coco_synth):
    rows, image, instances = coco_synth
    inst = instances[0]
    s = TopDownTransform(PROCESSOR, 0, train=False, pad_to=133).transform_example(image, inst.bbox, inst.keypoints)
    assert s["pixel_values"].shape == (3, 256, 192) and s["pixel_values"].dtype == np.float32
    assert s["labels"].shape == (133, 64, 48) and s["label_weights"].shape == (133,)
    assert s["label_weights"][17:].sum() == 0 and s["dataset_index"] == 0
    c, sc = box_to_center_scale(inst.bbox)
    np.testing.assert_allclose(s["center"], c, rtol=1e-6)
    np.testing.assert_allclose(s["scale"], sc, rtol=1e-6)
    np.testing.assert_array_equal(s["label_weights"][:17] > 0, inst.keypoints[:, 2] > 0)  # inside the padded box
    # the one crop-and-normalise implementation: the processor's own preprocessing of that box
    np.testing.assert_allclose(s["pixel_values"], PROCESSOR(image, [inst.bbox])["pixel_values"][0].numpy())


def test_train_transform_seeded_and_augmenting(coco_synth):
    _, image, instances = coco_synth
    inst = instances[0]
    t = TopDownTransform(PROCESSOR, "coco", train=True, half_body_prob=0)
    a = t.transform_example(image, inst.bbox, inst.keypoints, rng=np.random.default_rng(11))
    b = t.transform_example(image, inst.bbox, inst.keypoints, rng=np.random.default_rng(11))
    np.testing.assert_array_equal(a["pixel_values"], b["pixel_values"])
    many = [t.transform_example(image, inst.bbox, inst.keypoints, rng=np.random.default_rng(i)) for i in range(30)]
    rots = np.array([m["rotation"] for m in many])
    assert (rots == 0).any() and (rots != 0).any() and np.abs(rots).max() <= 80
    assert any(m["flipped"] for m in many) and not all(m["flipped"] for m in many)
    ratios = np.array([m["scale"][1] for m in many]) / box_to_center_scale(inst.bbox)[1][1]
    assert ratios.min() >= 0.5 - 1e-6 and ratios.max() <= 1.5 + 1e-6


def test_sizes_follow_the_processor(coco_synth):
    _, image, instances = coco_synth
    small = VitPosePlusImageProcessor(size={"height": 128, "width": 96})
    s = TopDownTransform(small, train=False).transform_example(image, instances[0].bbox, instances[0].keypoints)
    assert s["pixel_values"].shape == (3, 128, 96) and s["labels"].shape == (17, 32, 24)


def test_flip_in_transform_is_consistent(coco_synth):
    """A flipped sample's target equals the unflipped target of the mirrored image with swapped labels."""
    _, image, instances = coco_synth
    inst = instances[0]
    spec = get_dataset_spec("coco")
    t = TopDownTransform(PROCESSOR, train=True, flip_prob=1.0, half_body_prob=0, scale_factor=0, rotation_prob=0,
                         center_jitter_prob=0)
    flipped = t.transform_example(image, inst.bbox, inst.keypoints, rng=np.random.default_rng(0))
    plain = TopDownTransform(PROCESSOR, train=False).transform_example(image, inst.bbox, inst.keypoints)
    # mirror the un-flipped crop around its centre (UDP: x -> 191 - x) and swap channels
    perm = spec.flip_permutation()
    np.testing.assert_allclose(flipped["labels"], plain["labels"][perm][:, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(flipped["pixel_values"], plain["pixel_values"][:, :, ::-1], atol=0.05)


def test_mpii_annotated_center_scale(tmp_path):
    import json

    import cv2

    cv2.imwrite(str(tmp_path / "a.jpg"), np.full((300, 300, 3), 128, np.uint8))
    entry = {"image": "a.jpg", "center": [150.0, 140.0], "scale": 1.0,
             "joints": [[100.0 + i, 150.0 + i] for i in range(16)], "joints_vis": [1] * 16}
    (tmp_path / "mpii.json").write_text(json.dumps([entry]))
    rows = load_keypoint_dataset(tmp_path / "mpii.json", tmp_path, "mpii")
    dataset = TopDownTrainingDataset(rows, TopDownTransform(PROCESSOR, "mpii", train=False))
    assert len(dataset) == 1
    instance = top_down_instances(rows[0])[0]
    s = TopDownTransform(PROCESSOR, "mpii", train=False).transform_instance(rows[0]["image"], instance)
    np.testing.assert_allclose(s["center"], [149.0, 154.0])
    np.testing.assert_array_equal(dataset[0]["pixel_values"], s["pixel_values"])


def test_training_dataset_indexes_instances_and_names_unreadable_images(coco_synth, tmp_path):
    rows, _, _ = coco_synth
    dataset = TopDownTrainingDataset(rows, TopDownTransform(PROCESSOR, train=True), seed=0)
    assert len(dataset) == sum(len(top_down_instances(rows[i])) for i in range(len(rows)))
    # the item code carries the epoch: the same instance augments differently in another epoch, identically again
    a, b, c = dataset[0], dataset[len(dataset)], dataset[0]
    np.testing.assert_array_equal(a["pixel_values"], c["pixel_values"])
    assert not np.array_equal(a["pixel_values"], b["pixel_values"])
    broken = rows.map(lambda row: {"file_name": row["file_name"]})  # a copy whose first image file goes missing
    path = broken[0]["image"].filename
    os.rename(path, path + ".gone")
    try:
        with pytest.raises(ValueError, match=r"does not exist|Cannot read image file.*image_id"):
            TopDownTrainingDataset(broken, TopDownTransform(PROCESSOR, train=False))[0]
    finally:
        os.rename(path + ".gone", path)
