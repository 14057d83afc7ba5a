"""Reading checkpoint files (`.pth` / `.pt` / `.bin` / `.safetensors`) into plain state dicts."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import torch

from .state_dict_tools import CheckpointConversionError

logger = logging.getLogger(__name__)

#: Keys under which training frameworks nest the state dict, tried in this order.
_NESTING_KEYS = ("state_dict", "model", "module")


def _unwrap(obj: object, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in _NESTING_KEYS:
            if key in obj and isinstance(obj[key], Mapping):
                logger.info("%s: using the state dict stored under %r", path, key)
                return _unwrap(obj[key], path)
    if not isinstance(obj, Mapping):
        raise CheckpointConversionError(
            f"expected a dict holding a state dict (under 'state_dict', 'model' or 'module') or a bare state dict, "
            f"got {type(obj).__name__}",
            source=path,
        )
    not_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointConversionError(
            f"expected a state dict of tensors, but these entries are not tensors: {not_tensors[:20]}"
            f"{' ...' if len(not_tensors) > 20 else ''}",
            source=path,
        )
    state = {}
    for key, tensor in obj.items():
        name = str(key)
        while name.startswith("module."):  # DataParallel / DDP wrappers
            name = name[len("module.") :]
        if name in state:
            raise CheckpointConversionError(
                f"key {name!r} appears twice once 'module.' prefixes are removed", source=path
            )
        state[name] = tensor
    return state


def load_state_dict_file(path: str | os.PathLike, *, allow_unsafe_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (`.pth`/`.pt`/`.bin` via `torch.load`, or `.safetensors`) and return its state dict.

    The state dict is taken from `state_dict`, `model` or `module` when the file holds a dict with one of those keys
    (mmpose/mmcv, MAE, DDP), otherwise the file must be a bare state dict. `module.` prefixes are stripped.

    Args:
        path: the checkpoint file.
        allow_unsafe_pickle: `torch.load` runs with `weights_only=True` unless this is set; some old mmcv checkpoints
            store objects in `meta` that only a full unpickle reads. Only set it for files you trust.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path!r} does not exist.")
    if os.path.getsize(path) == 0:
        raise CheckpointConversionError("the file is empty (0 bytes); download it again", source=path)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return _unwrap(load_file(path), path)
        except Exception as err:  # safetensors raises SafetensorError for truncated or foreign files
            raise CheckpointConversionError(
                f"cannot read it as safetensors ({type(err).__name__}: {err}); the file is truncated or not a "
                "safetensors file",
                source=path,
            ) from err
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError depending on the version
        text = str(err)
        if _looks_truncated(path, text):
            raise CheckpointConversionError(
                f"the file is truncated or not a PyTorch checkpoint ({type(err).__name__}: {text[:200]}); download "
                "it again",
                source=path,
            ) from err
        if allow_unsafe_pickle:
            raise CheckpointConversionError(f"torch.load failed: {err}", source=path) from err
        raise CheckpointConversionError(
            f"torch.load(weights_only=True) cannot read this file ({type(err).__name__}: {text[:300]}). If you "
            "trust the file, pass --allow-unsafe-pickle (allow_unsafe_pickle=True) to unpickle it fully.",
            source=path,
        ) from err
    return _unwrap(obj, path)


def _looks_truncated(path: str, message: str) -> bool:
    """A torch.load failure that no unpickling option can fix: a cut zip archive or a cut legacy pickle."""
    import zipfile

    markers = ("central directory", "failed reading zip archive", "Ran out of input", "EOF", "truncated",
               "invalid load key", "could not find MARK", "pickle data was truncated")
    if any(marker in message for marker in markers):
        return True
    with open(path, "rb") as handle:
        magic = handle.read(4)
    return magic == b"PK\x03\x04" and not zipfile.is_zipfile(path)


def sha256_of_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, for provenance in model cards and reports."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
