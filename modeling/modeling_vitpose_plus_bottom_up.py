"""Bottom-up ViTPose / ViTPose+ with associative embedding (mmpose 0.x `AssociativeEmbedding` + `AESimpleHead`).

The backbone is `VitPosePlusModel` (state-dict keys `backbone.*` identical to the top-down model, experts included).
Each dataset has one head: the top-down classic (or simple) decoder with `2 K` output channels, the K heatmaps first,
then one tag map per keypoint (`tag_per_joint=True`). ViTPose+ routing is the top-down model's: the batch is sorted
once by (expert, dataset), every expert and head runs on its own contiguous run.

The loss is the original `MultiLossFactory` for one output stage: masked heatmap MSE (`HeatmapLoss`, mean over
keypoints and pixels per image) times 1.0, plus the AE pull and push terms (`AELoss`, per image) times 0.001 each, all
averaged over the images of the batch. Mixed-dataset batches use each dataset's head and keypoints for its own
images, weighted by n_d / batch_size, which is again the plain mean over the batch of the per-image losses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .configuration_vitpose_plus import VitPosePlusConfig
from .configuration_vitpose_plus_bottom_up import VitPosePlusBottomUpConfig
from .keypoint_codecs import flip_back_heatmaps
from .modeling_vitpose_plus import (
    EncodedBatch,
    ExpertRouting,
    VitPosePlusClassicHead,
    VitPosePlusForPoseEstimation,
    VitPosePlusModel,
    VitPosePlusPreTrainedModel,
    VitPosePlusSimpleHead,
    resize_position_table,
    resolve_dataset_index,
)

_POSITION_KEY = "backbone.embeddings.position_embeddings"


@dataclass
class VitPosePlusBottomUpOutput(ModelOutput):
    """
    Output of `VitPosePlusForBottomUpPoseEstimation`.

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            `heatmap_loss + push_loss + pull_loss`.
        heatmap_loss, push_loss, pull_loss (`torch.FloatTensor` of shape `()`, *optional*):
            The three terms, already multiplied by the config's loss factors (the original's `heatmap_loss`,
            `push_loss` and `pull_loss` entries).
        heatmaps (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints, height / 4, width / 4)`):
            Keypoint heatmaps (averaged with the flipped-back mirrored pass when `flip_test`); channels beyond a
            sample's own keypoint count are zero, as is the area outside each image's `pixel_mask`.
        tags (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints, height / 4, width / 4)`):
            One associative-embedding tag map per keypoint.
        flipped_tags (`torch.FloatTensor` of the shape of `tags`, *optional*, returned with `flip_test`):
            Tags of the mirrored pass, flipped back (width reversed, left/right channels swapped).
        hidden_states, attentions (*optional*): see `VitPosePlusModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    heatmap_loss: torch.FloatTensor | None = None
    push_loss: torch.FloatTensor | None = None
    pull_loss: torch.FloatTensor | None = None
    heatmaps: torch.FloatTensor | None = None
    tags: torch.FloatTensor | None = None
    flipped_tags: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------- losses


def masked_heatmap_loss(heatmaps: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The original `HeatmapLoss` (`supervise_empty=True`): per image, the mean over keypoints and pixels of
    `(pred - target)^2 * mask`.

    Args:
        heatmaps, targets: `(N, K, h, w)`; mask: `(N, h, w)`, 1 where the loss counts.

    Returns:
        `(N,)` per-image losses (float32).
    """
    squared = (heatmaps.float() - targets.float()) ** 2 * mask.float()[:, None]
    return squared.mean(dim=(1, 2, 3))


def associative_embedding_loss(
    tags: torch.Tensor, joints: torch.Tensor, loss_type: str = "exp"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original `AELoss`, vectorised over persons and images.

    Per image, with `t_p` the mean tag of person p over its visible joints and P the number of persons with at least
    one visible joint:

    * pull = `sum_p mean_j (tag_j - t_p)^2 / P` (0 when P = 0);
    * push = `(sum_{p, q} exp(-(t_p - t_q)^2) - P) / (P (P - 1)) * 0.5` for `"exp"` (`max(0, 1 - |t_p - t_q|)`
      for `"max"`), 0 when P < 2.

    Args:
        tags: `(N, K, h, w)` tag maps.
        joints: `(N, M, J, 2)` integer `(index, visible)` pairs, `index` into the flattened `(K, h, w)` tags (as
            written by `bottom_up_codec.encode_joints`).
        loss_type: `"exp"` or `"max"`.

    Returns:
        `push` `(N,)` and `pull` `(N,)` float32.
    """
    if loss_type not in ("exp", "max"):
        raise ValueError(f"Unknown AE loss type {loss_type!r}; use 'exp' or 'max'.")
    batch = tags.shape[0]
    flat = tags.float().reshape(batch, -1)
    index = joints[..., 0].long()
    visible = joints[..., 1] > 0
    if bool(visible.any()):
        picked = index[visible]
        low, high = int(picked.min()), int(picked.max())
        if low < 0 or high >= flat.shape[1]:
            raise ValueError(
                f"label_joints index {low if low < 0 else high} is outside the {tuple(tags.shape[1:])} tag maps "
                f"(valid 0..{flat.shape[1] - 1}); were the joints encoded for another heatmap size or layout?"
            )
    weight = visible.float()
    gathered = torch.gather(flat, 1, (index * visible).reshape(batch, -1)).reshape(index.shape)
    counts = weight.sum(-1)
    has_tag = counts > 0
    mean_tags = (gathered * weight).sum(-1) / counts.clamp(min=1)
    pull_per_person = ((gathered - mean_tags[..., None]) ** 2 * weight).sum(-1) / counts.clamp(min=1)
    num_tags = has_tag.float().sum(-1)
    pull = (pull_per_person * has_tag).sum(-1) / num_tags.clamp(min=1)
    pairs = (has_tag[:, :, None] & has_tag[:, None, :]).float()
    diff = mean_tags[:, :, None] - mean_tags[:, None, :]
    if loss_type == "exp":
        similarity = torch.exp(-(diff**2))
    else:
        similarity = torch.clamp(1 - diff.abs(), min=0)
    push_sum = (similarity * pairs).sum(dim=(1, 2)) - num_tags
    push = push_sum / ((num_tags - 1) * num_tags).clamp(min=1) * 0.5
    push = torch.where(num_tags >= 2, push, torch.zeros_like(push))
    return push, pull


# ---------------------------------------------------------------------------------------------------------- models


class VitPosePlusBottomUpModel(VitPosePlusModel):
    """The backbone of a bottom-up folder, for `AutoModel` (same class as `VitPosePlusModel`, bottom-up config)."""

    config_class = VitPosePlusBottomUpConfig


class VitPosePlusForBottomUpPoseEstimation(VitPosePlusPreTrainedModel):
    """ViTPose / ViTPose+ for whole images: one associative-embedding head (K heatmaps + K tag maps) per dataset."""

    config_class = VitPosePlusBottomUpConfig
    config: VitPosePlusBottomUpConfig
    _auto_map_model_classes = {
        "AutoModel": "VitPosePlusBottomUpModel",
        "AutoModelForPoseEstimation": "VitPosePlusForBottomUpPoseEstimation",
    }

    def __init__(self, config: VitPosePlusBottomUpConfig):
        super().__init__(config)
        self.backbone = VitPosePlusModel(config)
        head_class = VitPosePlusClassicHead if config.decoder_type == "classic" else VitPosePlusSimpleHead
        self.heads = nn.ModuleList(
            [head_class(config, 2 * len(entry["keypoint_names"])) for entry in config.datasets]
        )
        self._flip_permutations = [config.dataset_spec(i).flip_permutation() for i in range(config.num_datasets)]
        self.post_init()

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        dataset_index: torch.Tensor | int | str | None = None,
        labels: torch.Tensor | None = None,
        label_mask: torch.Tensor | None = None,
        label_joints: torch.Tensor | None = None,
        pixel_mask: torch.Tensor | None = None,
        flip_test: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        interpolate_pos_encoding: bool | None = None,
    ) -> VitPosePlusBottomUpOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
                Normalised whole images (512x512 in training; at test time short side 512, long side a multiple of
                64, zero-padded to the largest image of the batch).
            dataset_index (`torch.LongTensor` of shape `(batch_size,)`, `int` or `str`, *optional*):
                Dataset of each image (index into `config.datasets` or a name): picks the expert and the head. May be
                omitted only when the model has a single dataset.
            labels (`torch.FloatTensor` of shape `(batch_size, max_num_keypoints, height / 4, width / 4)`, *optional*):
                Target heatmaps (`bottom_up_codec.generate_heatmaps`), zero-padded beyond each image's keypoints.
            label_mask (`torch.FloatTensor` of shape `(batch_size, height / 4, width / 4)`, *optional*):
                1 where the heatmap loss counts, 0 on crowds, unannotated persons and outside the image (defaults to
                ones).
            label_joints (`torch.LongTensor` of shape `(batch_size, max_num_people, max_num_keypoints, 2)`,
                *optional*): `(index, visible)` of every person's visible joints (`bottom_up_codec.encode_joints`);
                required with `labels`.
            pixel_mask (`torch.LongTensor` of shape `(batch_size, height, width)`, *optional*):
                1 on each image's valid (top-left) area and 0 on the padding added to batch images of different sizes.
                Images of each valid size are run at that size, so that every image's maps equal those of running it
                alone; the maps are zero outside each image's area. Not supported together with `labels`.
            flip_test (`bool`, defaults to `False`): also run the mirrored images in the same pass, flip their maps
                back with the dataset's flip pairs (no shift), average the heatmaps and return the flipped-back tags
                as `flipped_tags` (the original's flip test, which concatenates the tags).
            interpolate_pos_encoding (`bool`, *optional*): accept inputs of another size than `config.image_size`
                (bicubic position table); defaults to `config.interpolate_pos_encoding` (on for bottom-up).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values.ndim != 4:
            raise ValueError(
                f"Expected pixel_values of shape (batch_size, num_channels, height, width), got "
                f"{tuple(pixel_values.shape)}."
            )
        batch_size = pixel_values.shape[0]
        index = resolve_dataset_index(self.config, dataset_index, batch_size, pixel_values.device)
        if isinstance(index, int):  # one dataset for the whole batch, given as an int or a name
            index = torch.full((batch_size,), index, dtype=torch.long, device=pixel_values.device)
        groups = self._valid_size_groups(pixel_mask, pixel_values) if pixel_mask is not None else None
        hidden_states = attentions = None
        if groups is None:
            heatmaps, tags, flipped_tags, encoded = self._predict(
                pixel_values, index, flip_test, output_hidden_states, output_attentions, interpolate_pos_encoding
            )
            hidden_states, attentions = encoded.ordered_extras()
        else:
            if labels is not None:
                raise ValueError("pixel_mask with padded images is for inference; train on unpadded inputs.")
            if output_hidden_states or output_attentions:
                raise ValueError(
                    "output_hidden_states / output_attentions are not available for batches of images of different "
                    "sizes (pixel_mask); run each size separately."
                )
            heatmaps, tags, flipped_tags = self._predict_padded(
                pixel_values, index, groups, flip_test, interpolate_pos_encoding
            )

        loss = heatmap_loss = push_loss = pull_loss = None
        if labels is not None:
            loss, heatmap_loss, push_loss, pull_loss = self.compute_loss(
                heatmaps, tags, labels, label_mask, label_joints, index
            )
        if not return_dict:
            values = (loss, heatmap_loss, push_loss, pull_loss, heatmaps, tags, flipped_tags, hidden_states, attentions)
            return tuple(v for v in values if v is not None)
        return VitPosePlusBottomUpOutput(
            loss=loss,
            heatmap_loss=heatmap_loss,
            push_loss=push_loss,
            pull_loss=pull_loss,
            heatmaps=heatmaps,
            tags=tags,
            flipped_tags=flipped_tags,
            hidden_states=hidden_states,
            attentions=attentions,
        )

    def _predict(
        self,
        pixel_values: torch.Tensor,
        index: torch.Tensor,
        flip_test: bool,
        output_hidden_states: bool | None,
        output_attentions: bool | None,
        interpolate_pos_encoding: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, EncodedBatch]:
        """Backbone and heads on equally sized images; maps in batch order."""
        if flip_test:
            pixel_values = torch.cat([pixel_values, pixel_values.flip(-1)], dim=0)
            index = torch.cat([index, index])
        encoded = self.backbone.encode(
            pixel_values,
            dataset_index=index,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        heatmaps, tags, flipped_tags = self._decode_heads(encoded, flip_test)
        return heatmaps, tags, flipped_tags, encoded

    def _decode_heads(
        self, encoded: EncodedBatch, flip_test: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Run each dataset's head on its contiguous run of the sorted batch; split heatmaps / tags; flip back.

        With `flip_test` the batch holds the mirrored copies after the originals; the stable sort keeps each run's
        originals before its mirrored copies in the same order, so the two halves of a run pair up.
        """
        feature_map = encoded.feature_map()
        routing = encoded.routing
        runs = routing.dataset_runs if routing is not None else [(0, 0, feature_map.shape[0])]
        chunks = feature_map.split(ExpertRouting.sizes(runs), dim=0) if len(runs) > 1 else [feature_map]
        max_k = self.config.max_num_keypoints
        heatmap_parts, tag_parts, flipped_parts, positions = [], [], [], []
        for (dataset, start, end), features in zip(runs, chunks):
            out = self.heads[dataset](features)
            k = out.shape[1] // 2
            heatmaps, tags = out[:, :k].contiguous(), out[:, k:].contiguous()
            if flip_test:
                count = (end - start) // 2
                permutation = self._flip_permutations[dataset]
                flipped_heatmaps = flip_back_heatmaps(heatmaps[count:], permutation, shift=False)
                flipped_parts.append(_pad_channels(flip_back_heatmaps(tags[count:], permutation, shift=False), max_k))
                heatmaps = (heatmaps[:count] + flipped_heatmaps) / 2.0
                tags = tags[:count]
                end = start + count
            heatmap_parts.append(_pad_channels(heatmaps, max_k))
            tag_parts.append(_pad_channels(tags, max_k))
            if routing is not None and routing.order is not None:
                positions.append(routing.order[start:end])
        order = torch.cat(positions) if positions else None
        return (
            _restore_order(heatmap_parts, order),
            _restore_order(tag_parts, order),
            _restore_order(flipped_parts, order) if flip_test else None,
        )

    def _valid_size_groups(
        self, pixel_mask: torch.Tensor, pixel_values: torch.Tensor
    ) -> list[tuple[tuple[int, int], torch.Tensor]] | None:
        """Images grouped by valid `(height, width)`, or `None` when no image is padded."""
        batch, _, height, width = pixel_values.shape
        if tuple(pixel_mask.shape) != (batch, height, width):
            raise ValueError(
                f"pixel_mask must have shape (batch_size, height, width) = ({batch}, {height}, {width}), got "
                f"{tuple(pixel_mask.shape)}."
            )
        mask = pixel_mask.bool()
        rows = mask.any(dim=2).sum(dim=1).tolist()
        cols = mask.any(dim=1).sum(dim=1).tolist()
        sums = mask.sum(dim=(1, 2)).tolist()
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (h, w, total) in enumerate(zip(rows, cols, sums)):
            if h == 0 or w == 0 or total != h * w or not bool(mask[i, :h, :w].all()):
                raise ValueError(
                    f"pixel_mask of image {i} must be 1 on a non-empty top-left rectangle and 0 elsewhere (the "
                    "padding of the image processor)."
                )
            groups.setdefault((h, w), []).append(i)
        if list(groups) == [(height, width)]:
            return None
        return [(size, torch.tensor(members, device=pixel_values.device)) for size, members in groups.items()]

    def _predict_padded(
        self,
        pixel_values: torch.Tensor,
        index: torch.Tensor,
        groups: list[tuple[tuple[int, int], torch.Tensor]],
        flip_test: bool,
        interpolate_pos_encoding: bool | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        batch, _, height, width = pixel_values.shape
        out_h, out_w = self.config.heatmap_size_for(height, width)
        outputs: list[torch.Tensor | None] = [None, None, None]
        for (h, w), members in groups:
            parts = self._predict(
                pixel_values[members, :, :h, :w].contiguous(), index[members], flip_test, False, False,
                interpolate_pos_encoding,
            )[:3]
            for slot, part in enumerate(parts):
                if part is None:
                    continue
                if outputs[slot] is None:  # zeros outside every image's own area
                    outputs[slot] = part.new_zeros(batch, part.shape[1], out_h, out_w)
                outputs[slot][members, :, : part.shape[2], : part.shape[3]] = part
        return outputs[0], outputs[1], outputs[2]

    # ------------------------------------------------------------------ loss
    def compute_loss(
        self,
        heatmaps: torch.Tensor,
        tags: torch.Tensor,
        labels: torch.Tensor,
        label_mask: torch.Tensor | None,
        label_joints: torch.Tensor | None,
        dataset_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Heatmap, push and pull losses (each times its config factor) and their sum; see the module docstring.

        Args:
            heatmaps, tags: `(batch_size, max_num_keypoints, h, w)` predictions.
            labels: `(batch_size, max_num_keypoints, h, w)` target heatmaps.
            label_mask: `(batch_size, h, w)` loss mask, or `None` for ones.
            label_joints: `(batch_size, max_num_people, max_num_keypoints, 2)` encoded joints.
            dataset_index: `(batch_size,)` dataset of each image.

        Returns:
            `(loss, heatmap_loss, push_loss, pull_loss)`, scalars.
        """
        batch_size, max_k, height, width = heatmaps.shape
        if tuple(labels.shape) != tuple(heatmaps.shape):
            raise ValueError(
                f"labels must have shape (batch_size, max_num_keypoints, height, width) = {tuple(heatmaps.shape)}, "
                f"got {tuple(labels.shape)}."
            )
        if label_mask is None:
            label_mask = heatmaps.new_ones(batch_size, height, width)
        if tuple(label_mask.shape) != (batch_size, height, width):
            raise ValueError(
                f"label_mask must have shape (batch_size, height, width) = ({batch_size}, {height}, {width}), got "
                f"{tuple(label_mask.shape)}."
            )
        if label_joints is None:
            raise ValueError("label_joints (batch_size, max_num_people, max_num_keypoints, 2) is required with labels.")
        if label_joints.ndim != 4 or label_joints.shape[0] != batch_size or label_joints.shape[-1] != 2:
            raise ValueError(
                f"label_joints must have shape (batch_size={batch_size}, max_num_people, max_num_keypoints, 2), got "
                f"{tuple(label_joints.shape)}."
            )
        if label_joints.is_floating_point():
            raise ValueError(f"label_joints must hold integers (index, visible), got dtype {label_joints.dtype}.")
        present = [0] if self.config.num_datasets == 1 else torch.unique(dataset_index).tolist()
        totals = [heatmaps.new_zeros((), dtype=torch.float32) for _ in range(3)]
        for dataset in present:
            k = len(self.config.datasets[dataset]["keypoint_names"])
            if len(present) == 1:
                rows = slice(None)
                count = batch_size
            else:
                rows = (dataset_index == dataset).nonzero().squeeze(1)
                count = rows.numel()
            hm = masked_heatmap_loss(heatmaps[rows, :k], labels[rows, :k], label_mask[rows])
            push, pull = associative_embedding_loss(tags[rows, :k], label_joints[rows], self.config.ae_loss_type)
            factor = count / batch_size
            if self.config.loss_weights is not None:
                factor *= float(self.config.loss_weights[dataset])
            totals[0] = totals[0] + factor * self.config.heatmap_loss_factor * hm.mean()
            totals[1] = totals[1] + factor * self.config.push_loss_factor * push.mean()
            totals[2] = totals[2] + factor * self.config.pull_loss_factor * pull.mean()
        heatmap_loss, push_loss, pull_loss = totals
        return heatmap_loss + push_loss + pull_loss, heatmap_loss, push_loss, pull_loss

    # ------------------------------------------------------------------ experts and initialisation
    def merge_experts(self, dataset: int | str = 0) -> VitPosePlusForBottomUpPoseEstimation:
        """Dense single-dataset model for `dataset`: fc2 = cat(fc2, expert), that dataset's head only (the top-down
        model's fold, which is exact up to float rounding)."""
        return VitPosePlusForPoseEstimation.merge_experts(self, dataset)

    @classmethod
    def from_top_down(
        cls,
        model_or_folder: VitPosePlusForPoseEstimation | str | os.PathLike,
        image_size: tuple[int, int] | list[int] = (512, 512),
        **config_overrides,
    ) -> VitPosePlusForBottomUpPoseEstimation:
        """A bottom-up model whose backbone is a top-down model's (an instance or a saved folder), e.g. one built
        from MAE weights by `conversion.convert_mae.init_from_mae_state_dict`.

        The backbone's tensors are copied; the position table is resized to the `image_size` grid (bicubic,
        `align_corners=False`, slot 0 kept, as the original's MAE initialisation) when the grids differ. The heads
        keep their (mmpose) initialisation. Keyword overrides replace config fields (e.g. `datasets`).
        """
        if isinstance(model_or_folder, (str, os.PathLike)):
            model_or_folder = VitPosePlusForPoseEstimation.from_pretrained(model_or_folder)
        source_config = model_or_folder.config
        if not isinstance(source_config, VitPosePlusConfig):
            raise ValueError(f"Expected a VitPosePlusForPoseEstimation, got {type(model_or_folder).__name__}.")
        config = VitPosePlusBottomUpConfig.from_top_down_config(source_config, image_size=image_size,
                                                                **config_overrides)
        model = cls(config)
        state = {k: v for k, v in model_or_folder.state_dict().items() if k.startswith("backbone.")}
        own = model.state_dict()
        if _POSITION_KEY in state and state[_POSITION_KEY].shape != own[_POSITION_KEY].shape:
            state[_POSITION_KEY] = resize_position_table(
                state[_POSITION_KEY], model_or_folder.backbone.embeddings.grid_size, model.backbone.embeddings.grid_size
            )
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("heads.")]
        if missing or unexpected:
            raise ValueError(
                f"The top-down backbone does not fit the bottom-up model: missing {missing}, unexpected {unexpected}."
            )
        model.to(dtype=next(model_or_folder.parameters()).dtype)
        return model


def _pad_channels(maps: torch.Tensor, channels: int) -> torch.Tensor:
    return maps if maps.shape[1] >= channels else F.pad(maps, (0, 0, 0, 0, 0, channels - maps.shape[1]))


def _restore_order(parts: list[torch.Tensor], order: torch.Tensor | None) -> torch.Tensor:
    """Concatenate per-run outputs and put them back in batch order (`order`: batch position of each row)."""
    stacked = torch.cat(parts, dim=0) if len(parts) > 1 else parts[0]
    if order is None:
        return stacked
    return torch.empty_like(stacked).index_copy_(0, order, stacked)


VitPosePlusForBottomUpPoseEstimation.register_for_auto_class("AutoModelForPoseEstimation")
VitPosePlusBottomUpModel.register_for_auto_class("AutoModel")

__all__ = [
    "VitPosePlusBottomUpModel",
    "VitPosePlusBottomUpOutput",
    "VitPosePlusForBottomUpPoseEstimation",
    "associative_embedding_loss",
    "masked_heatmap_loss",
]
