"""Reading checkpoints from disk and the error type shared by every converter."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping

import torch

logger = logging.getLogger(__name__)

#: Keys under which training frameworks nest the state dict, tried in this order.
_NESTING_KEYS = ("state_dict", "model", "module")


class CheckpointConversionError(ValueError):
    """A checkpoint cannot be converted exactly.

    Attributes:
        unknown: source keys that match no rule.
        missing: target keys that no source key provides.
        mismatched: `(key, got_shape, expected_shape)` triples.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        unknown: Iterable[str] = (),
        missing: Iterable[str] = (),
        mismatched: Iterable[tuple[str, tuple[int, ...], tuple[int, ...]]] = (),
    ):
        self.source = source
        self.unknown = sorted(unknown)
        self.missing = sorted(missing)
        self.mismatched = sorted(mismatched)
        lines = [message if source is None else f"{source}: {message}"]
        if self.unknown:
            lines.append(f"{len(self.unknown)} unknown key(s) (no mapping rule):")
            lines.extend(f"  {key}" for key in self.unknown)
        if self.missing:
            lines.append(f"{len(self.missing)} missing key(s) (needed by the target model, absent from the source):")
            lines.extend(f"  {key}" for key in self.missing)
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} key(s) with a wrong shape:")
            lines.extend(f"  {key}: got {list(got)}, expected {list(want)}" for key, got, want in self.mismatched)
        super().__init__("\n".join(lines))


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
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return _unwrap(load_file(path), path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_unsafe_pickle)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError depending on the version
        if allow_unsafe_pickle:
            raise CheckpointConversionError(f"torch.load failed: {err}", source=path) from err
        raise CheckpointConversionError(
            f"torch.load(weights_only=True) cannot read this file ({type(err).__name__}: {str(err)[:300]}). If you "
            "trust the file, pass --allow-unsafe-pickle (allow_unsafe_pickle=True) to unpickle it fully.",
            source=path,
        ) from err
    return _unwrap(obj, path)


def sha256_of_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, for provenance in model cards and reports."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
