"""`VitPosePlusBottomUpImageProcessor`: the original test resize, padded batches, and grouping back to the image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from test_bottom_up_codec import _original_affine
from test_bottom_up_modeling import bottom_up_config, make_bottom_up

from vitpose_plus.modeling import VitPosePlusBottomUpImageProcessor, VitPosePlusBottomUpOutput
from vitpose_plus.modeling.bottom_up_grouping import GroupingParams, aggregate_outputs, parse, transform_preds

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _image(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_resize_equals_the_original_test_pipeline():
    processor = VitPosePlusBottomUpImageProcessor(size={"height": 128, "width": 128})
    image = _image(100, 150)
    out = processor(image)
    assert out["pixel_values"].shape == (1, 3, 128, 192) and out["pixel_mask"].shape == (1, 128, 192)
    assert bool(out["pixel_mask"].all())
    # BottomUpGetImgSize + BottomUpResizeAlign: base size (192, 128), center (75, 50), scale (192 / 128 * 100 / 200,
    # 100 / 200); cv2.warpAffine with the 3-point matrix; ToTensor; NormalizeTensor.
    matrix = _original_affine(np.array([75, 50]), np.array([0.75, 0.5]), 0, (192, 128))
    resized = cv2.warpAffine(image, matrix, (192, 128))
    expected = ((resized.astype(np.float32) / 255.0 - MEAN) / STD).transpose(2, 0, 1)
    np.testing.assert_allclose(out["pixel_values"][0].numpy(), expected, atol=2e-6, rtol=0)
    size, base, center, scale = processor.resize_geometry(100, 150)
    assert size == base == (128, 192) and center.tolist() == [75, 50]
    np.testing.assert_allclose(scale, [0.75, 0.5])


def test_sizes_are_height_width_like_the_top_down_processor():
    """`input_size`, `resize_geometry` and `heatmap_size_for` speak (height, width), as `image_size` and the top-down
    processor do; a non-square size shows the order (landscape images take the height as their short side, portrait
    ones the width, as the original's `BottomUpGetImgSize`)."""
    processor = VitPosePlusBottomUpImageProcessor(size={"height": 128, "width": 192})
    assert processor.input_size == (128, 192)
    landscape, base, _, _ = processor.resize_geometry(100, 150)
    assert landscape == base == (128, 192)  # short side 128; 150 * 128 / 100 = 192
    portrait, _, center, scale = processor.resize_geometry(150, 100)
    assert portrait == (320, 192)  # short side 192; 150 * 192 / 100 = 288, rounded up to 320
    assert center.tolist() == [50, 75]
    np.testing.assert_allclose(scale, [0.5, 320 / 192 * 100 / 200])
    assert processor(_image(150, 100))["pixel_values"].shape == (1, 3, 320, 192)
    assert processor.heatmap_size_for(320, 192) == (80, 48)


def test_batch_is_padded_with_a_mask():
    processor = VitPosePlusBottomUpImageProcessor(size={"height": 128, "width": 128})
    images = [_image(100, 150), _image(150, 100, 1), _image(128, 128, 2)]
    out = processor(images, return_tensors="np")
    assert out["pixel_values"].shape == (3, 3, 192, 192) and out["pixel_values"].dtype == np.float32
    for i, (h, w) in enumerate([(128, 192), (192, 128), (128, 128)]):
        single = processor(images[i], return_tensors="np")["pixel_values"][0]
        np.testing.assert_array_equal(out["pixel_values"][i, :, :h, :w], single)
        assert out["pixel_mask"][i, :h, :w].all() and out["pixel_mask"][i].sum() == h * w
        assert not out["pixel_values"][i, :, h:].any() and not out["pixel_values"][i, :, :, w:].any()
    with pytest.raises(ValueError, match="Unknown arguments"):
        processor(images, boxes=[])


def _two_person_output():
    """Maps of a 256 x 256 image at 1/4 of the 128 x 128 input: A at (5, 10), B at (20, 10) in every channel."""
    k, size = 17, 32
    heatmaps = torch.zeros(1, k, size, size)
    tags = torch.full((1, k, size, size), 50.0)
    for ch in range(k):
        heatmaps[0, ch, 10, 5], heatmaps[0, ch, 10, 6], heatmaps[0, ch, 11, 5] = 0.9, 0.5, 0.5  # right/down higher
        heatmaps[0, ch, 10, 20] = 0.8  # zero neighbours
        tags[0, ch, 9:12, 4:7] = 0.0
        tags[0, ch, 9:12, 19:22] = 3.0
    return VitPosePlusBottomUpOutput(heatmaps=heatmaps, tags=tags)


def test_post_process_hand_computed():
    processor = VitPosePlusBottomUpImageProcessor(size={"height": 128, "width": 128}, project2image=False)
    people = processor.post_process_bottom_up(_two_person_output(), [(256, 256)])
    assert len(people) == 1 and len(people[0]) == 2
    a, b = people[0]
    # center (128, 128), scale (1.28, 1.28): x_image = x_map * 256 / 32 + 128 - 128; adjust gives +0.75 / +0.25
    torch.testing.assert_close(a["keypoints"], torch.tensor([[5.75 * 8, 10.75 * 8]] * 17), atol=1e-5, rtol=0)
    torch.testing.assert_close(b["keypoints"], torch.tensor([[20.25 * 8, 10.25 * 8]] * 17), atol=1e-5, rtol=0)
    torch.testing.assert_close(a["scores"], torch.full((17,), 0.9))
    assert a["score"] == pytest.approx(0.9) and b["score"] == pytest.approx(0.8)
    assert a["keypoints"].dtype == torch.float32 and a["keypoints"].shape == (17, 2)


def test_post_process_projects_to_the_input_size():
    processor = VitPosePlusBottomUpImageProcessor(size={"height": 128, "width": 128})
    out = _two_person_output()
    people = processor.post_process_bottom_up(out, torch.tensor([[256, 256]]))
    heatmaps, tags = aggregate_outputs([out.heatmaps], [[out.tags]], [1.0], (128, 128), True, False)
    assert heatmaps.shape == (1, 17, 128, 128)
    grouped, scores = parse(heatmaps[0], tags[0], GroupingParams(17))
    assert len(people[0]) == len(grouped) == 2
    for person, expected, score in zip(people[0], grouped, scores):
        torch.testing.assert_close(person["keypoints"],
                                   torch.from_numpy(transform_preds(expected, (128, 128), (1.28, 1.28), (128, 128))))
        assert person["score"] == score
    # the projected peaks land near the low-resolution ones, x 8 in the image
    torch.testing.assert_close(people[0][0]["keypoints"][0], torch.tensor([5.75 * 8, 10.75 * 8]), atol=4.0, rtol=0)


def _same_people(got, expected, atol=0.0):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        torch.testing.assert_close(a["keypoints"], b["keypoints"], atol=atol, rtol=0)
        torch.testing.assert_close(a["scores"], b["scores"], atol=atol, rtol=0)
        assert a["score"] == pytest.approx(b["score"], abs=atol)


def test_padded_batch_gives_the_same_people_as_one_by_one():
    model = make_bottom_up(bottom_up_config(image_size=(128, 128)))
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config, detection_threshold=-1.0)
    images = [_image(100, 150), _image(170, 90, 1), _image(128, 128, 2)]
    sizes = [(100, 150), (170, 90), (128, 128)]
    inputs = processor(images)
    assert inputs["pixel_values"].shape == (3, 3, 256, 192)
    with torch.no_grad():
        batched = processor.post_process_bottom_up(model(**inputs, flip_test=True), sizes)
        for image, size, got in zip(images, sizes, batched):
            alone = processor.post_process_bottom_up(model(**processor(image), flip_test=True), [size])[0]
            assert len(alone) > 0
            _same_people(got, alone)


def test_multi_scale_test_wiring():
    model = make_bottom_up(bottom_up_config(image_size=(128, 128)))
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config, detection_threshold=-1.0)
    image = _image(100, 150)
    outputs = []
    with torch.no_grad():
        for factor in (1.0, 2.0):
            inputs = processor(image, scale_factor=factor, min_scale_factor=1.0)
            assert inputs["pixel_values"].shape[-2:] == (128 * factor, 192 * factor)
            outputs.append(model(**inputs, flip_test=True))
    people = processor.post_process_bottom_up(outputs, [(100, 150)], scale_factors=[1.0, 2.0])
    # heatmaps of both scales projected to the scale-1 input and averaged; tags (plain + flipped) from scale 1
    heatmaps, tags = aggregate_outputs(
        [o.heatmaps for o in outputs], [[o.tags, o.flipped_tags] for o in outputs], [1.0, 2.0], (192, 128)
    )
    grouped, scores = parse(heatmaps[0], tags[0], processor.grouping_params(17))
    assert len(people[0]) == len(grouped) > 0 and tags.shape[-1] == 2
    for person, expected, score in zip(people[0], grouped, scores):
        torch.testing.assert_close(person["keypoints"],
                                   torch.from_numpy(transform_preds(expected, (75, 50), (0.75, 0.5), (192, 128))))
        assert person["score"] == score


def test_save_load_round_trip_and_errors(tmp_path):
    model = make_bottom_up(bottom_up_config(datasets=["aic"]))
    processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config, tag_threshold=0.8)
    processor.save_pretrained(tmp_path)
    loaded = VitPosePlusBottomUpImageProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.dataset["name"] == "aic" and loaded.tag_threshold == 0.8 and loaded.size == {"height": 64,
                                                                                              "width": 64}
    out = _two_person_output()
    with pytest.raises(ValueError, match=r"target_sizes must be one \(height, width\) per image"):
        processor.post_process_bottom_up(out, [(256, 256), (10, 10)])
    with pytest.raises(ValueError, match="1 outputs but 2 scale factors"):
        processor.post_process_bottom_up(out, [(256, 256)], scale_factors=[1, 2])
    with pytest.raises(ValueError, match=r"needs maps of at least \(14, 16, 256\)"):
        processor.post_process_bottom_up(out, [(64, 1024)])
    with pytest.raises(ValueError, match="nms_kernel"):
        VitPosePlusBottomUpImageProcessor(nms_kernel=4)


def _oracle_maps(joints_in_maps, map_size):
    """Perfect model outputs: the training target heatmaps and a tag of 5 p on person p's joints (17 x 17 patch)."""
    from vitpose_plus.modeling.bottom_up_codec import generate_heatmaps

    heatmaps = torch.from_numpy(generate_heatmaps(joints_in_maps, 17, map_size))[None]
    tags = torch.zeros_like(heatmaps)
    for p, person in enumerate(joints_in_maps):
        for k, (x, y, _) in enumerate(person):
            tags[0, k, max(0, int(y) - 8) : int(y) + 9, max(0, int(x) - 8) : int(x) + 9] = 5.0 * p
    return VitPosePlusBottomUpOutput(heatmaps=heatmaps, tags=tags)


def _separated_people(width, height, count=3):
    """Persons side by side (no two joints of a type closer than 40 px)."""
    people = []
    for p in range(count):
        xs = (p + 0.5) * width / count + 20 * np.sin(np.arange(17) * (p + 1))
        ys = 20 + np.arange(17) * (height - 40) / 16
        people.append(np.stack([xs, ys, np.full(17, 2.0)], axis=1).astype(np.float32))
    return people


def _assert_found(found, people, tolerance):
    """Every person found once (in any order: the equal nose scores tie in top-k), every keypoint within tolerance."""
    assert len(found) == len(people)
    errors = np.array([[np.abs(f["keypoints"].numpy() - p[:, :2]).max() for p in people] for f in found])
    assert sorted(errors.argmin(axis=1).tolist()) == list(range(len(people)))
    assert errors.min(axis=1).max() < tolerance


def test_training_targets_group_back_to_the_annotations():
    """Round trip: targets of a 512 x 512 image from the training transform (identity augmentation) grouped by the
    processor give every annotated keypoint back within the 4-pixel heatmap stride."""
    from vitpose_plus.training.bottom_up_transforms import BottomUpTrainTransform

    people = _separated_people(512, 512)
    transform = BottomUpTrainTransform("coco", scale_range=(1, 1), rotation_factor=0, translation_factor=0,
                                       flip_prob=0)
    instances = [{"keypoints": p.reshape(-1).tolist(), "iscrowd": 0, "num_keypoints": 17} for p in people]
    sample = transform(np.zeros((512, 512, 3), np.uint8), instances)
    found = VitPosePlusBottomUpImageProcessor().post_process_bottom_up(_oracle_maps(sample["joints"], (128, 128)),
                                                                      [(512, 512)])[0]
    _assert_found(found, people, 3.0)
    # the 4x bilinear projection samples the unit peak 1/8 pixel off in x and y: (7/8 + 1/8 exp(-1/8))^2
    peak = (0.875 + 0.125 * np.exp(-1 / 8)) ** 2
    assert [person["score"] for person in found] == pytest.approx([peak] * 3, rel=1e-6)


def test_test_resize_geometry_groups_back_to_the_image():
    """A 640 x 480 image: joints mapped into the 512 x 704 (height x width) input (short side 512, long side padded to
    a multiple of 64) and its 128 x 176 maps come back to image coordinates within the stride (4 px / 1.0667 in the
    image)."""
    from vitpose_plus.modeling.bottom_up_codec import three_point_affine_transform, transform_joints

    processor = VitPosePlusBottomUpImageProcessor()
    size, _, center, scale = processor.resize_geometry(480, 640)
    assert size == (512, 704)
    people = _separated_people(640, 480)
    matrix = three_point_affine_transform(center, scale, 0.0, (size[1], size[0]))  # the codec takes (width, height)
    in_maps = [np.concatenate([transform_joints(p[:, :2], matrix) / 4, p[:, 2:]], axis=1) for p in people]
    found = processor.post_process_bottom_up(_oracle_maps(np.stack(in_maps).astype(np.float32), (176, 128)),
                                             [(480, 640)])[0]
    _assert_found(found, people, 4.0 / (512 / 480))
