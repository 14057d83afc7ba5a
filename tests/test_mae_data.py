"""MAE pre-training inputs (person crops, random resized crops) and reconstruction pictures."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from vitpose_plus.modeling import VitPosePlusForMaskedImageModeling, VitPosePlusMAEConfig
from vitpose_plus.modeling.modeling_vitpose_plus_mae import VitPosePlusMAEOutput
from vitpose_plus.training.mae_pictures import (
    HIDDEN_GREY,
    reconstruction_pictures,
    render_reconstructions,
    save_png,
)
from vitpose_plus.training.pretraining_data import (
    MAEPretrainingTransform,
    crop_person,
    denormalize_image,
    normalize_image,
    pretraining_processor,
    random_resized_crop_box,
    resize_image,
)

MEAN = np.array([0.485, 0.456, 0.406])  # ImageNet statistics, the processor's defaults
STD = np.array([0.229, 0.224, 0.225])


def _image(height: int = 300, width: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------------ crop mode
def test_crop_person_is_the_top_down_udp_crop():
    """On a linear ramp the crop reads the image at x = cx + (i - 95.5) * 200 s_w / 191, y = cy + (j - 127.5) *
    200 s_h / 255 (UDP, reference section 3.3); the 60x80 box is already 3:4, so 200 s = (75, 100) after padding."""
    ys, xs = np.mgrid[0:300, 0:300].astype(np.float32)
    ramp = np.stack([xs, ys, np.zeros_like(xs)], axis=-1)
    crop = crop_person(ramp, (40, 30, 60, 80))
    assert crop.shape == (256, 192, 3)
    j, i = np.mgrid[0:256, 0:192]
    np.testing.assert_allclose(crop[..., 0], 70 + (i - 95.5) * 75 / 191, atol=0.05)
    np.testing.assert_allclose(crop[..., 1], 70 + (j - 127.5) * 100 / 255, atol=0.05)
    # A wide box is fixed to 3:4 by growing its height: 120x40 -> 120x160, then padded to 150x200.
    wide = crop_person(ramp, (40, 80, 120, 40))
    np.testing.assert_allclose(wide[..., 1], 100 + (j - 127.5) * 200 / 255, atol=0.05)
    with pytest.raises(ValueError, match="w, h > 0"):
        crop_person(ramp, (0, 0, 0, 10))


def test_crop_mode_flip_normalise_and_determinism():
    image = _image()
    box = [50, 40, 90, 120]
    plain = MAEPretrainingTransform(mode="crop", flip_prob=0.0)
    flipped = MAEPretrainingTransform(mode="crop", flip_prob=1.0)
    out = plain(image, box, rng=np.random.default_rng(0))
    assert out.shape == (3, 256, 192) and out.dtype == np.float32
    crop = crop_person(image, box).astype(np.float64)
    np.testing.assert_allclose(out, ((crop / 255 - MEAN) / STD).transpose(2, 0, 1), atol=1e-5)
    np.testing.assert_array_equal(flipped(image, box, rng=np.random.default_rng(0)), out[:, :, ::-1])
    half = MAEPretrainingTransform(mode="crop", seed=3)
    draws = [half(image, box) for _ in range(200)]
    flips = sum(np.array_equal(d, out[:, :, ::-1]) for d in draws)
    assert sum(np.array_equal(d, out) for d in draws) + flips == 200 and 70 <= flips <= 130
    again = MAEPretrainingTransform(mode="crop", seed=3)
    assert all(np.array_equal(a, again(image, box)) for a in draws[:20])


def test_crop_mode_picks_one_of_several_boxes_and_whole_image_without_boxes():
    image = _image()
    boxes = np.array([[10, 10, 60, 80], [200, 100, 90, 120], [300, 150, 40, 50]], dtype=np.float64)
    transform = MAEPretrainingTransform(mode="crop", flip_prob=0.0)
    expected = [normalize_image(crop_person(image, b).astype(np.uint8)) for b in boxes]
    rng = np.random.default_rng(5)
    seen = set()
    for _ in range(30):
        out = transform(image, boxes, rng=rng)
        matches = [k for k, e in enumerate(expected) if np.array_equal(out, e)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2}
    whole = transform(image, None, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(whole, normalize_image(crop_person(image, (0, 0, 400, 300)).astype(np.uint8)))


# ------------------------------------------------------------------------------------------------ whole-image mode
def test_random_resized_crop_box_ranges_and_fallback():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = random_resized_crop_box(300, 400, rng)
        assert 0 <= top and top + h <= 300 and 0 <= left and left + w <= 400
        assert 0.2 * 120000 * 0.97 <= h * w <= 120000
        assert 0.75 * 0.97 <= w / h <= 4 / 3 * 1.03
    # No crop of 20 % area with aspect <= 4/3 fits a 10-pixel-high strip: centre crop, aspect clamped to 4/3.
    assert random_resized_crop_box(10, 1000, np.random.default_rng(0)) == (0, 493, 10, 13)
    assert random_resized_crop_box(1000, 10, np.random.default_rng(0)) == (493, 0, 13, 10)


def test_whole_mode_ratio_is_relative_to_the_input_aspect():
    image = _image(480, 640)
    transform = MAEPretrainingTransform(mode="whole", flip_prob=0.0)
    out = transform(image, rng=np.random.default_rng(9))
    rng = np.random.default_rng(9)
    top, left, h, w = random_resized_crop_box(480, 640, rng, (0.2, 1.0), (0.75 * 0.75, 0.75 * 4 / 3))
    expected = normalize_image(resize_image(image[top : top + h, left : left + w], (256, 192)))
    np.testing.assert_array_equal(out, expected)
    absolute = MAEPretrainingTransform(mode="whole", flip_prob=0.0, ratio_relative_to_input=False)
    rng = np.random.default_rng(9)
    top, left, h, w = random_resized_crop_box(480, 640, rng, (0.2, 1.0), (0.75, 4 / 3))
    np.testing.assert_array_equal(absolute(image, rng=np.random.default_rng(9)),
                                  normalize_image(resize_image(image[top : top + h, left : left + w], (256, 192))))


def test_resize_and_bad_input():
    image = _image(100, 80)
    assert resize_image(image, (256, 192)).shape == (256, 192, 3)
    np.testing.assert_array_equal(resize_image(image, (50, 40)),
                                  cv2.resize(image, (40, 50), interpolation=cv2.INTER_AREA))
    with pytest.raises(ValueError, match="mode must be one of"):
        MAEPretrainingTransform(mode="random")
    with pytest.raises(ValueError, match=r"\(H, W, 3\) RGB image"):
        MAEPretrainingTransform()(np.zeros((10, 10), np.uint8))


def test_transform_batch_reads_image_files(tmp_path):
    image = _image(120, 90)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    transform = MAEPretrainingTransform(mode="crop", flip_prob=0.0, image_size=(64, 48))
    batch = transform.transform_batch({"image": [str(path), image], "bbox": [[10, 10, 40, 60], None]})
    assert len(batch["pixel_values"]) == 2
    small = pretraining_processor((64, 48))
    np.testing.assert_array_equal(batch["pixel_values"][0],
                                  normalize_image(crop_person(image, (10, 10, 40, 60), small).astype(np.uint8)))
    np.testing.assert_array_equal(batch["pixel_values"][1],
                                  normalize_image(crop_person(image, (0, 0, 90, 120), small).astype(np.uint8)))


def test_normalise_round_trip():
    image = _image(16, 12)
    np.testing.assert_array_equal(denormalize_image(normalize_image(image)), image)
    np.testing.assert_array_equal(denormalize_image(torch.from_numpy(normalize_image(image))), image)


# -------------------------------------------------------------------------------------------------------- pictures
@pytest.fixture
def tiny_model() -> VitPosePlusForMaskedImageModeling:
    torch.manual_seed(0)
    config = VitPosePlusMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=(64, 48),
                                  decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=4)
    return VitPosePlusForMaskedImageModeling(config)


def _perfect_outputs(model, x, noise):
    """Outputs whose predictions are the exact (per-patch normalised) targets."""
    with torch.no_grad():
        out = model(x, noise=noise)
    target = model.patchify(x)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
    return VitPosePlusMAEOutput(logits=(target - mean) / (var + 1e-6).sqrt(), mask=out.mask)


def test_reconstruction_pictures_show_original_hidden_and_prediction(tiny_model):
    images = [_image(64, 48, seed=s) for s in range(2)]
    x = torch.from_numpy(np.stack([normalize_image(i) for i in images]))
    noise = torch.rand(2, 12, generator=torch.Generator().manual_seed(1))
    outputs = _perfect_outputs(tiny_model, x, noise)
    hidden = tiny_model.unpatchify(outputs.mask.unsqueeze(-1).expand(-1, -1, 768))[:, 0].numpy() > 0.5
    grey = np.array(HIDDEN_GREY, np.uint8)
    for paste in (True, False):
        rows = reconstruction_pictures(tiny_model, x, outputs=outputs, paste_visible=paste)
        for b, (original, masked, recon) in enumerate(rows):
            np.testing.assert_array_equal(original, images[b])
            seen = np.zeros((64, 48), bool)
            seen[:62, :46] = True  # the last 2 rows / columns: no token sees them (padding 2)
            visible = seen & ~hidden[b]
            np.testing.assert_array_equal(masked[visible], images[b][visible])
            assert (masked[~visible] == grey).all() and (recon[~seen] == grey).all()
            assert np.abs(recon[seen].astype(int) - images[b][seen]).max() <= 1
    # Wrong predictions on visible patches: pasted over (exact original) or shown (differs).
    wrong = VitPosePlusMAEOutput(logits=outputs.logits + 3.0 * (1 - outputs.mask).unsqueeze(-1), mask=outputs.mask)
    _, _, pasted = reconstruction_pictures(tiny_model, x, outputs=wrong, paste_visible=True)[0]
    _, _, shown = reconstruction_pictures(tiny_model, x, outputs=wrong, paste_visible=False)[0]
    visible = ~hidden[0]
    visible[62:], visible[:, 46:] = False, False
    np.testing.assert_array_equal(pasted[visible], images[0][visible])
    assert np.abs(shown[visible].astype(int) - images[0][visible]).mean() > 20


def test_render_reconstructions_grid_and_png(tiny_model, tmp_path):
    x = torch.from_numpy(np.stack([normalize_image(_image(64, 48, seed=s)) for s in range(3)]))
    tiny_model.train()
    grid = render_reconstructions(tiny_model, x, num_samples=2, upscale=2)
    assert tiny_model.training  # put back after the eval-mode pass
    assert grid.dtype == np.uint8 and grid.shape == (18 + 2 * 128 + 3 * 2, 3 * 96 + 4 * 2, 3)
    path = tmp_path / "pictures" / "step_0.png"
    save_png(path, grid)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), grid)
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(2))
    a = render_reconstructions(tiny_model, x, noise=noise)
    b = render_reconstructions(tiny_model, x, outputs=tiny_model.eval()(x, noise=noise), num_samples=4)
    assert a.shape[0] == 18 + 3 * 64 + 4 * 2 and np.array_equal(a, b)
    assert math.isfinite(float(a.mean()))
