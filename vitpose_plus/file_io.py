"""Shared readers and writers: JSON files, images and model folders (the one low module everything else uses).

Every function names the file it could not read and says what was expected, so that callers in training, evaluation,
inference and conversion report bad input the same way.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation
from .modeling.image_processing_vitpose_plus import to_rgb_array


def read_json_file(path: str | os.PathLike, what: str = "annotation") -> Any:
    """Parse a JSON file; `ValueError` naming the file (and what it was meant to be) when unreadable or invalid."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as err:
        raise ValueError(f"Cannot read {what} file {path!r}: {err}") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{what.capitalize()} file {path!r} is not valid JSON: {err}") from err


def decode_image(value: Any, context: str = "") -> np.ndarray:
    """An `image` cell (PIL image, `{"path", "bytes"}` dict from `Image(decode=False)`, path or array) to RGB uint8.

    Grayscale is repeated to three channels, alpha is dropped and 16-bit images are scaled by 1/257 (rounded).

    Returns:
        `(H, W, 3)` uint8 array. Raises `ValueError` naming `context` (e.g. the annotation id) when unreadable.
    """
    import cv2

    where = f" ({context})" if context else ""
    if isinstance(value, (str, os.PathLike)):
        value = {"path": os.fspath(value), "bytes": None}
    if isinstance(value, dict):
        raw = value.get("bytes")
        file_path = value.get("path")
        if raw is None:
            try:
                with open(file_path, "rb") as handle:
                    raw = handle.read()
            except (OSError, TypeError) as err:
                raise ValueError(f"Cannot read image file {file_path!r}{where}: {err}") from err
        arr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"Image {file_path!r}{where} could not be decoded (corrupt or unsupported file).")
        if arr.ndim == 3 and arr.shape[2] == 4:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
        elif arr.ndim == 3 and arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
        value = arr
    try:
        rgb = to_rgb_array(value, 0)
    except ValueError as err:
        raise ValueError(f"Unsupported image{where}: {err}") from err
    if rgb.dtype != np.uint8:
        rgb = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return rgb


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as an `(H, W, 3)` uint8 RGB array; `ValueError` naming the file when it cannot be read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Image file {path!r} does not exist.")
    return decode_image(path)


def read_mat_file(path: str | os.PathLike, what: str = "MATLAB") -> dict[str, Any]:
    """Variables of a MATLAB `.mat` file (`scipy.io.loadmat`); `ValueError` naming the file when unreadable."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{what} file {path!r} does not exist.")
    try:
        from scipy.io import loadmat
    except ImportError as err:  # pragma: no cover - scipy is a dependency
        raise ValueError(f"Reading {what} file {path!r} needs scipy (pip install scipy).") from err
    try:
        return loadmat(path)
    except Exception as err:  # scipy raises several types for broken files
        raise ValueError(f"{what} file {path!r} is not a readable .mat file: {err}") from err


IMAGE_CHECK_DEPTHS = ("none", "exists", "header", "decode")
"""How deep `inspect_image_file` looks: nothing, a non-empty file, the header plus the end-of-file marker, a decode."""

# End-of-image markers searched in a file's last bytes: a JPEG cut short loses its EOI marker (0xFFD9 cannot occur
# inside the entropy-coded data), a PNG its IEND chunk. Some writers append a few padding bytes, hence the window.
_TAIL_WINDOW = 64
_END_MARKERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND"}


def inspect_image_file(path: str | os.PathLike, depth: str = "header") -> tuple[int, int] | None:
    """Check that an image file is present and readable without decoding it (unless `depth="decode"`).

    Args:
        path: the image file.
        depth: `"none"` (no check), `"exists"` (a non-empty file), `"header"` (the header parses and, for JPEG and
            PNG, the file ends with its end-of-image marker, which catches truncated files cheaply) or `"decode"`
            (the pixels decode).

    Returns:
        `(width, height)` from the header (`None` for depths `"none"` and `"exists"`). Raises `ValueError` naming the
        file and what is wrong (missing, 0 bytes, truncated, not an image).
    """
    if depth not in IMAGE_CHECK_DEPTHS:
        raise ValueError(f"Unknown image check depth {depth!r}; use one of {IMAGE_CHECK_DEPTHS}.")
    if depth == "none":
        return None
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
    except OSError:
        raise ValueError(f"Image file {path!r} does not exist.") from None
    if size == 0:
        raise ValueError(f"Image file {path!r} is empty (0 bytes).")
    if depth == "exists":
        return None
    from PIL import Image as PILImage

    try:
        with PILImage.open(path) as img:
            width, height = img.size
            kind = img.format
            if depth == "decode":
                img.load()
    except Exception as err:  # PIL raises several types for broken files
        raise ValueError(f"Image file {path!r} is not a readable image: {err}") from err
    marker = _END_MARKERS.get(kind or "")
    if marker is not None:
        with open(path, "rb") as handle:
            handle.seek(max(0, size - _TAIL_WINDOW))
            tail = handle.read()
        if marker not in tail:
            raise ValueError(f"Image file {path!r} is truncated: its {kind} end-of-image marker is missing "
                             f"({size} bytes).")
    return int(width), int(height)


def load_model_folder(path: str | os.PathLike, **kwargs: Any) -> VitPosePlusForPoseEstimation:
    """Load one of our model folders (or Hub id) as `VitPosePlusForPoseEstimation`, in eval mode."""
    path = os.fspath(path)
    config_file = os.path.join(path, "config.json")
    if os.path.isdir(path) and not os.path.isfile(config_file):
        raise FileNotFoundError(f"{path!r} has no config.json; expected a model folder written by vitpose-plus.")
    if os.path.isfile(config_file):
        with open(config_file, encoding="utf-8") as handle:
            model_type = json.load(handle).get("model_type")
        if model_type != VitPosePlusConfig.model_type:
            raise ValueError(
                f"{config_file} has model_type {model_type!r}, expected {VitPosePlusConfig.model_type!r}"
                + (
                    " (a transformers VitPose folder: use `convert from-transformers`)"
                    if model_type == "vitpose"
                    else ""
                )
            )
    return VitPosePlusForPoseEstimation.from_pretrained(path, **kwargs).eval()


__all__ = [
    "IMAGE_CHECK_DEPTHS",
    "decode_image",
    "inspect_image_file",
    "load_model_folder",
    "read_image",
    "read_json_file",
    "read_mat_file",
]
