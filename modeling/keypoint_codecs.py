"""Top-down keypoint codecs: the one place for heatmap geometry, encoding and decoding.

Used by the model (flip test), the image processor and training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def flip_back_heatmaps(heatmaps: torch.Tensor, flip_permutation: Sequence[int], shift: bool) -> torch.Tensor:
    """Undo a horizontal flip of the input on predicted heatmaps (the original `flip_back` plus its shift).

    Args:
        heatmaps: `(batch, K, h, w)` heatmaps predicted on mirrored crops.
        flip_permutation: length-K channel permutation swapping left and right keypoints
            (`KeypointDatasetSpec.flip_permutation()`).
        shift: shift the result one column right (`hm[..., 1:] = hm[..., :-1]`, column 0 kept), as the original
            does for non-UDP datasets (`shift_heatmap=True`) to re-align the flipped pixel grid.

    Returns:
        `(batch, K, h, w)` heatmaps in the un-mirrored frame.
    """
    perm = torch.as_tensor(list(flip_permutation), device=heatmaps.device, dtype=torch.long)
    if perm.numel() != heatmaps.shape[1]:
        raise ValueError(
            f"flip_permutation has {perm.numel()} entries but the heatmaps have {heatmaps.shape[1]} channels."
        )
    flipped = heatmaps.index_select(1, perm).flip(-1)
    if shift:
        flipped = torch.cat([flipped[..., :1], flipped[..., :-1]], dim=-1)
    return flipped
