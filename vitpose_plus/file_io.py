"""Shared readers and writers (the one low module everything else uses): JSON/YAML files, images, atomic writes,
output-folder locks, and model folders (load, and save as a Hub-ready folder).

Every reader names the file it could not read and says what was wrong (missing, empty, truncated, not the expected
kind), so that training, evaluation, inference and conversion report bad input the same way. Every writer writes to a
temporary name and renames, so a full disk or a kill never leaves a truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from .modeling import (
    VitPosePlusBottomUpConfig,
    VitPosePlusBottomUpImageProcessor,
    VitPosePlusConfig,
    VitPosePlusForBottomUpPoseEstimation,
    VitPosePlusForMaskedImageModeling,
    VitPosePlusForPoseEstimation,
    VitPosePlusImageProcessor,
    VitPosePlusMAEConfig,
)
from .modeling.image_processing_vitpose_plus import to_rgb_array

logger = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------------------ text files
def read_json_file(path: str | os.PathLike, what: str = "annotation") -> Any:
    """Parse a JSON file; `ValueError` naming the file (and what it was meant to be) when unreadable or invalid."""
    path = os.fspath(path)
    text = _read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        hint = " (it ends early: the file looks truncated)" if err.pos >= len(text.rstrip()) else ""
        raise ValueError(f"{what.capitalize()} file {path!r} is not valid JSON{hint}: {err}") from err


class _NumberFriendlyLoader:
    """A PyYAML SafeLoader that reads `1e-3` as a float (YAML 1.1 only accepts floats with a dot: `1.0e-3`)."""

    loader: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls.loader is None:
            import yaml

            class Loader(yaml.SafeLoader):
                pass

            Loader.add_implicit_resolver(
                "tag:yaml.org,2002:float",
                re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                list("-+0123456789."),
            )
            cls.loader = Loader
        return cls.loader


def parse_yaml(text: str, source: str = "<text>") -> Any:
    """YAML text to Python objects (numbers like `1e-3` are numbers); `ValueError` naming `source` when invalid."""
    import yaml

    try:
        return yaml.load(text, Loader=_NumberFriendlyLoader.get())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"{source} is not valid YAML: {err}") from err


def read_yaml_file(path: str | os.PathLike, what: str = "config") -> Any:
    """Parse a YAML file (see `parse_yaml`); `ValueError` naming the file when unreadable or invalid."""
    path = os.fspath(path)
    return parse_yaml(_read_text(path, what), f"{what.capitalize()} file {path!r}")


def _read_text(path: str, what: str) -> str:
    if os.path.isdir(path):
        raise ValueError(f"{what.capitalize()} file {path!r} is a folder, expected a file.")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what.capitalize()} file {path!r} does not exist.")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise ValueError(f"{what.capitalize()} file {path!r} is not a text file ({err}).") from err
    except OSError as err:
        raise ValueError(f"Cannot read {what} file {path!r}: {err}") from err
    if not text.strip():
        raise ValueError(f"{what.capitalize()} file {path!r} is empty.")
    return text


# ------------------------------------------------------------------------------------------------------ images
def decode_image(value: Any, context: str = "") -> np.ndarray:
    """An `image` cell (PIL image, `{"path", "bytes"}` dict from `Image(decode=False)`, path or array) to RGB uint8.

    Grayscale is repeated to three channels, alpha is dropped and 16-bit images are scaled by 1/257 (rounded). An
    empty file, a truncated JPEG or PNG (no end-of-image marker: OpenCV would silently return a partly grey picture)
    and an undecodable file raise `ValueError` naming the file and `context` (e.g. the annotation id).

    Returns:
        `(H, W, 3)` uint8 array.
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
        if not raw:
            raise ValueError(f"Image {file_path!r}{where} is empty (0 bytes).")
        kind = "JPEG" if raw[:2] == b"\xff\xd8" else "PNG" if raw[:8] == b"\x89PNG\r\n\x1a\n" else None
        if kind is not None and _END_MARKERS[kind] not in raw[-_TAIL_WINDOW:]:
            raise ValueError(f"Image {file_path!r}{where} is a truncated {kind} (its end-of-image marker is missing).")
        arr = cv2.imdecode(np.frombuffer(raw, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"Image {file_path!r}{where} could not be decoded (corrupt, truncated or not an image).")
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


# ------------------------------------------------------------------------------------------------------ writing
@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temporary file next to `path`; on success it replaces `path` in one rename (never a partial file)."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle_fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle_fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(err, OSError) and err.errno is not None:  # e.g. a full disk: say which file, and that it is safe
            raise OSError(err.errno, f"Cannot write {path!r}: {err.strerror or err}; nothing was written under that "
                                     "name (a previous file there is unchanged)") from err
        raise


def write_json(path: str | os.PathLike, data: Any, indent: int | None = 2) -> None:
    """Write JSON atomically (see `atomic_write`)."""
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=indent)
        handle.write("\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write text atomically (see `atomic_write`)."""
    with atomic_write(path) as handle:
        handle.write(text)


class FolderLock:
    """An exclusive lock on an output folder (a `.lock` file held with `flock`), so that two runs never write into
    the same folder at once. Released when the process ends, also on a kill."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = os.fspath(folder)
        self._handle = None

    def acquire(self) -> FolderLock:
        import fcntl

        os.makedirs(self.folder, exist_ok=True)
        handle = open(os.path.join(self.folder, ".lock"), "a+")  # noqa: SIM115 - held for the run's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            handle.close()
            raise RuntimeError(
                f"Output folder {self.folder!r} is in use by another run (its .lock is held); wait for it or choose "
                "another output folder."
            ) from err
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


# ------------------------------------------------------------------------------------------------------ model folders
#: Model classes by `model_type`, for `load_model_folder`; model families register theirs here.
MODEL_CLASSES: dict[str, type] = {
    VitPosePlusConfig.model_type: VitPosePlusForPoseEstimation,
    VitPosePlusBottomUpConfig.model_type: VitPosePlusForBottomUpPoseEstimation,
    VitPosePlusMAEConfig.model_type: VitPosePlusForMaskedImageModeling,  # `vitpose-plus pretrain` folders
}


def check_local_path(path: str | os.PathLike, what: str = "model folder") -> str:
    """`path` unchanged when it exists or can only be a Hub id; `FileNotFoundError` ("no such folder") for a missing
    local path, instead of a confusing Hub repo-id or connection error later."""
    path = os.fspath(path)
    if os.path.exists(path):
        return path
    is_hub_id = re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", path) is not None
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("0", "", "false", "no")
    if not is_hub_id:
        raise FileNotFoundError(f"No such {what}: {path!r}.")
    if offline:
        raise FileNotFoundError(f"No such {what}: {path!r} (HF_HUB_OFFLINE is set, so it is not looked up on the Hub).")
    return path


def load_model_folder(path: str | os.PathLike, **kwargs: Any) -> Any:
    """Load one of our model folders (or a Hub id), in eval mode, as the class its `model_type` names.

    Raises:
        FileNotFoundError: for a missing local folder or a folder without `config.json`.
        ValueError: for a `config.json` that is not valid JSON or names another model type.
    """
    path = check_local_path(path)
    config_file = os.path.join(path, "config.json")
    if os.path.isdir(path) and not os.path.isfile(config_file):
        raise FileNotFoundError(f"{path!r} has no config.json; expected a model folder written by vitpose-plus.")
    model_class = VitPosePlusForPoseEstimation
    if os.path.isfile(config_file):
        model_type = read_json_file(config_file, "model config").get("model_type")
        if model_type not in MODEL_CLASSES:
            raise ValueError(
                f"{config_file} has model_type {model_type!r}, expected one of {sorted(MODEL_CLASSES)}"
                + (" (a transformers VitPose folder: use `convert from-transformers`)" if model_type == "vitpose"
                   else "")
            )
        model_class = MODEL_CLASSES[model_type]
    try:
        return model_class.from_pretrained(path, **kwargs).eval()
    except OSError as err:
        raise ValueError(f"Cannot load the model folder {path!r}: {err}") from err
    except ValueError as err:  # a config.json field of the wrong type or an impossible architecture
        raise ValueError(f"Cannot load the model folder {path!r}: {config_file}: {err}") from err
    except Exception as err:
        broken = _unreadable_weight_files(path)
        if not broken:
            raise
        raise ValueError(f"Cannot load the model folder {path!r}: {'; '.join(broken)}") from err


def _unreadable_weight_files(folder: str) -> list[str]:
    """`"<file> is truncated or not a safetensors file (...)"` for each weights file of `folder` whose header or size
    does not check out (safetensors' own errors name no file)."""
    from safetensors import safe_open

    problems = []
    if not os.path.isdir(folder):
        return problems
    for name in sorted(n for n in os.listdir(folder) if n.endswith(".safetensors")):
        file = os.path.join(folder, name)
        try:
            with safe_open(file, framework="pt"):
                pass
        except Exception as err:  # SafetensorError for a cut file, OSError for an unreadable one
            problems.append(f"{file} is truncated or not a safetensors file ({os.path.getsize(file)} bytes: {err})")
    return problems


def _ensure_auto_map(model: Any) -> None:
    """Make `save_pretrained` copy the modeling files and write `auto_map` (idempotent): the classes are registered
    with the auto classes in-process only."""
    if getattr(type(model.config), "_auto_class", None) is None:
        type(model.config).register_for_auto_class("AutoConfig")
    if getattr(type(model), "_auto_class", None) is None:
        type(model).register_for_auto_class("AutoModelForPoseEstimation")


def save_model_folder(
    model: Any,
    output_dir: str | os.PathLike,
    *,
    processor: Any = None,
    card: Any = None,
    report: dict[str, Any] | None = None,
    extra_files: dict[str, str] | None = None,
    max_shard_size: str | int = "5GB",
    overwrite: bool = False,
) -> list[str]:
    """Save `model` as a Hub-ready folder, atomically, and return the written file names.

    The folder holds `config.json` (with `auto_map`), safetensors weights (sharded at `max_shard_size`), the modeling
    code files for `trust_remote_code`, `preprocessor_config.json` (the given processor, or the model's default
    top-down or bottom-up processor), `README.md` (from `card`: a `hub_cards.ModelCardInfo` or markdown text),
    `conversion_report.json` (from `report`) and `extra_files` (name -> text). Everything is written into a temporary
    sibling folder that then replaces `output_dir` in one rename.

    Raises:
        FileExistsError: when `output_dir` holds files and `overwrite` is False.
        RuntimeError: when the saved config has no `auto_map` (the folder would not load remotely).
    """
    output_dir = os.path.abspath(os.fspath(output_dir))
    if os.path.isdir(output_dir) and os.listdir(output_dir) and not overwrite:
        raise FileExistsError(
            f"Output folder {output_dir!r} exists and is not empty; choose a new folder or pass --overwrite "
            "(overwrite=True) to replace it."
        )
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(f"Output path {output_dir!r} is a file, expected a folder.")
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.", suffix=".tmp", dir=parent)
    try:
        _ensure_auto_map(model)
        model.save_pretrained(staging, max_shard_size=max_shard_size)
        config = read_json_file(os.path.join(staging, "config.json"), "model config")
        if "auto_map" not in config:
            raise RuntimeError(f"{output_dir}/config.json has no auto_map; the folder would not load remotely.")
        if processor is None and isinstance(model, VitPosePlusForPoseEstimation):
            processor = VitPosePlusImageProcessor.from_model_config(model.config)
        if processor is None and isinstance(model, VitPosePlusForBottomUpPoseEstimation):
            processor = VitPosePlusBottomUpImageProcessor.from_model_config(model.config)
        if processor is not None:
            processor.save_pretrained(staging)
        if card is not None:  # markdown, or a card object that renders itself (hub_cards.cards.ModelCardInfo)
            write_text(os.path.join(staging, "README.md"), card if isinstance(card, str) else card.render())
        if report is not None:
            write_json(os.path.join(staging, "conversion_report.json"), report)
        for name, text in (extra_files or {}).items():
            write_text(os.path.join(staging, name), text)
        _replace_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sorted(os.listdir(output_dir))
    logger.info("wrote %s: %s", output_dir, ", ".join(files))
    return files


def _replace_folder(staging: str, target: str) -> None:
    """Move `staging` to `target`; an existing `target` is renamed aside first and removed only afterwards."""
    if not os.path.exists(target):
        os.replace(staging, target)
        return
    aside = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.", suffix=".old", dir=os.path.dirname(target))
    os.rmdir(aside)
    os.replace(target, aside)
    os.replace(staging, target)
    shutil.rmtree(aside, ignore_errors=True)


__all__ = [
    "IMAGE_CHECK_DEPTHS",
    "MODEL_CLASSES",
    "FolderLock",
    "atomic_write",
    "check_local_path",
    "decode_image",
    "inspect_image_file",
    "load_model_folder",
    "parse_yaml",
    "read_image",
    "read_json_file",
    "read_mat_file",
    "read_yaml_file",
    "save_model_folder",
    "write_json",
    "write_text",
]
