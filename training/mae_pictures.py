"""Pictures of what an MAE learned: a grid of (original, masked input, reconstruction) rows, with OpenCV and numpy.

`render_reconstructions(model, pixel_values)` runs `VitPosePlusForMaskedImageModeling` (or takes its outputs) and
returns an RGB uint8 array; `save_png` writes it. With `norm_pix_loss` the predictions are per-patch normalised, so
each predicted patch is un-normalised with the mean and variance of the true patch (`reconstruct_patches`), as MAE's
visualisation does. Pixels no token sees (the last 2 rows / columns at 256x192, padding 2) and hidden patches are
drawn in grey. Pixel values are turned back into pictures with the normalisation of the top-down image processor that
prepared them (`pretraining_data.denormalize_image`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np
import torch

from vitpose_plus.modeling import VitPosePlusImageProcessor

from .pretraining_data import denormalize_image

#: Colour of hidden patches and of pixels no token sees.
HIDDEN_GREY = (128, 128, 128)
COLUMN_LABELS = ("original", "masked", "reconstruction")


def compose_grid(
    rows: Sequence[Sequence[np.ndarray]],
    labels: Sequence[str] | None = COLUMN_LABELS,
    gap: int = 2,
    upscale: int = 1,
    background: tuple[int, int, int] = (255, 255, 255),
) -> np.ndarray:
    """Tile equally sized `(h, w, 3)` uint8 pictures: one row per sample, one column per kind, `gap` pixels between
    them and an optional header with the column labels.

    Returns:
        `(H, W, 3)` uint8 RGB array.
    """
    if not rows or not rows[0]:
        raise ValueError("compose_grid needs at least one row with one picture.")
    h, w = rows[0][0].shape[:2]
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            if picture.shape != (h, w, 3) or picture.dtype != np.uint8:
                raise ValueError(
                    f"Picture (row {r}, column {c}) is {picture.shape} {picture.dtype}; expected ({h}, {w}, 3) uint8."
                )
    h, w = h * upscale, w * upscale
    num_cols = max(len(row) for row in rows)
    header = 18 if labels else 0
    canvas = np.full(
        (header + len(rows) * h + (len(rows) + 1) * gap, num_cols * w + (num_cols + 1) * gap, 3),
        background,
        dtype=np.uint8,
    )
    if labels:
        for c, label in enumerate(labels[:num_cols]):
            cv2.putText(canvas, label, (gap + c * (w + gap) + 2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                        cv2.LINE_AA)
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            if upscale != 1:
                picture = cv2.resize(picture, (w, h), interpolation=cv2.INTER_NEAREST)
            top, left = header + gap + r * (h + gap), gap + c * (w + gap)
            canvas[top : top + h, left : left + w] = picture
    return canvas


@torch.no_grad()
def reconstruction_pictures(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    outputs=None,
    noise: torch.Tensor | None = None,
    paste_visible: bool = True,
    processor: VitPosePlusImageProcessor | None = None,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per sample, the `(original, masked, reconstruction)` pictures as `(H, W, 3)` uint8 RGB arrays.

    Args:
        model: a `VitPosePlusForMaskedImageModeling`; run in eval mode (then put back) unless `outputs` is given.
        pixel_values (`torch.Tensor` of shape `(batch_size, 3, height, width)`): normalised inputs.
        outputs: the model's outputs for `pixel_values` (`logits`, `mask`), to avoid a second forward pass.
        noise (`torch.Tensor` of shape `(batch_size, num_patches)`, *optional*): fixes the masks.
        paste_visible: show the visible patches from the original in the reconstruction (MAE's
            "reconstruction + visible"); otherwise every patch is the model's prediction.
        processor: the processor whose normalisation produced `pixel_values` (the default top-down one, ImageNet
            statistics, when `None`).
    """
    if outputs is None:
        was_training = model.training
        model.eval()
        try:
            outputs = model(pixel_values, noise=noise, interpolate_pos_encoding=True)
        finally:
            model.train(was_training)
    size = tuple(pixel_values.shape[-2:])
    values = model.config.patch_size**2 * model.config.num_channels
    pixels = pixel_values.float()
    recon = model.unpatchify(model.reconstruct_patches(pixels, outputs.logits.float()), size)
    hidden = model.unpatchify(outputs.mask.float().unsqueeze(-1).expand(-1, -1, values), size)[:, 0] > 0.5
    seen = model.unpatchify(torch.ones_like(outputs.logits, dtype=torch.float32), size)[:, 0] > 0.5
    visible = (seen & ~hidden).cpu().numpy()
    seen = seen.cpu().numpy()
    grey = np.asarray(HIDDEN_GREY, dtype=np.uint8)
    pictures = []
    for i in range(pixels.shape[0]):
        original = denormalize_image(pixels[i], processor)
        masked = np.where(visible[i][..., None], original, grey)
        predicted = denormalize_image(recon[i], processor)
        if paste_visible:
            predicted = np.where(visible[i][..., None], original, predicted)
        predicted = np.where(seen[i][..., None], predicted, grey)
        pictures.append((original, masked.astype(np.uint8), predicted.astype(np.uint8)))
    return pictures


def render_reconstructions(
    model: torch.nn.Module,
    pixel_values: torch.Tensor,
    outputs=None,
    noise: torch.Tensor | None = None,
    num_samples: int = 4,
    paste_visible: bool = True,
    upscale: int = 1,
    processor: VitPosePlusImageProcessor | None = None,
) -> np.ndarray:
    """A grid with one row (original, masked, reconstruction) for each of the first `num_samples` samples.

    Returns:
        `(H, W, 3)` uint8 RGB array (write it with `save_png`, or log it to TensorBoard / W&B as is).
    """
    count = min(int(num_samples), pixel_values.shape[0])
    if count < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
    if outputs is not None:
        outputs = type(outputs)(logits=outputs.logits[:count], mask=outputs.mask[:count])
    rows = reconstruction_pictures(
        model, pixel_values[:count], outputs=outputs, noise=None if noise is None else noise[:count],
        paste_visible=paste_visible, processor=processor,
    )
    return compose_grid(rows, COLUMN_LABELS, upscale=upscale)


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an `(H, W, 3)` uint8 RGB array as PNG (parent folders created)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
        raise OSError(f"Could not write the PNG {path!r}.")


__all__ = [
    "COLUMN_LABELS",
    "HIDDEN_GREY",
    "compose_grid",
    "reconstruction_pictures",
    "render_reconstructions",
    "save_png",
]
