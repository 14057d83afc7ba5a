"""Knowledge transfer from a larger ViTPose / ViTPose+ into a smaller one (the paper's transferability section):
heatmap distillation and the knowledge token. See docs/distillation.md.

Heatmap distillation (paper eq. 3, `L_od = MSE(K_s, K_t)`): the frozen teacher runs in `no_grad` and eval mode on the
same augmented crops as the student, and `heatmap_weight * MSE(student heatmaps, teacher heatmaps)` is added to the
ground-truth loss (eq. 5, `L_tod`). The MSE is **not** masked by the target weights: the paper's eq. 3 has none, and
the teacher's heatmaps of unlabelled or invisible keypoints are knowledge the ground truth cannot give. It is computed
per dataset over that dataset's own keypoints and combined as the ground-truth loss is (weights `n_d / B` and
`config.loss_weights`), so both terms have the same scale.

Knowledge token (paper eq. 4): one learnable token appended after the teacher's patch tokens, trained with the
ordinary pose loss while everything else stays frozen (`vitpose-plus distill token`); then appended, frozen, to the
student's tokens while the student trains (`distillation.knowledge_token`). When teacher and student widths differ
the token is learned in the student's width and reaches the teacher through a linear map (no bias) trained with it
and then discarded; see `KnowledgeTokenLearner` for what this does to the token.

    vitpose-plus distill token --teacher runs/synthetic/model --config student.yaml --output-dir runs/token
    vitpose-plus train --config student.yaml --set distillation.knowledge_token=runs/token/knowledge_token.safetensors

A teacher of any size works, dense or ViTPose+: each of the run's datasets is matched by name to one of the teacher's
datasets (its expert and head), with the same keypoint count; teacher and student must share the crop and heatmap
size (the same augmented crops feed both). Accelerate (several processes) and `transformers.Trainer`
(`DistillationTrainer`) use the same `DistillationLoss`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn
from transformers import Trainer

from vitpose_plus.file_io import load_model_folder, write_json
from vitpose_plus.modeling import VitPosePlusConfig, VitPosePlusForPoseEstimation

from .config import TokenLearningConfig, TrainingConfig

logger = logging.getLogger(__name__)

TOKEN_FILE = "knowledge_token.safetensors"
TOKEN_METADATA_FILE = "knowledge_token.json"
TOKEN_PARAMETER = "backbone.embeddings.knowledge_token"
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ------------------------------------------------------------------------------------------------------ the teacher
def load_teacher(folder: str, dtype: str = "fp32", device: torch.device | str | None = None
                 ) -> VitPosePlusForPoseEstimation:
    """A saved model folder as a frozen teacher: eval mode (BatchNorm statistics and dropout fixed), no parameter
    requires grad, weights in `dtype` ("fp32", "bf16" or "fp16") on `device`.

    Raises:
        ValueError: the folder is not a top-down pose model, or `dtype` is unknown.
    """
    if dtype not in _DTYPES:
        raise ValueError(f"teacher dtype {dtype!r}: expected one of {list(_DTYPES)}.")
    teacher = load_model_folder(folder)
    if not isinstance(teacher, VitPosePlusForPoseEstimation):
        raise ValueError(f"Teacher {folder!r} is a {type(teacher).__name__}; distillation needs a top-down pose model "
                         "(VitPosePlusForPoseEstimation).")
    teacher.requires_grad_(False).eval()
    return teacher.to(device=device, dtype=_DTYPES[dtype])


def teacher_dataset_table(teacher_config: VitPosePlusConfig, student_config: VitPosePlusConfig,
                          teacher_name: str = "teacher") -> torch.Tensor:
    """`(num_student_datasets,)` LongTensor: the teacher's dataset index (expert and head) of each student dataset,
    matched by name. Also checks that both models see the same crops and heatmaps.

    Raises:
        ValueError: naming a student dataset the teacher lacks, a keypoint-count mismatch, or another input or heatmap
            size.
    """
    if list(teacher_config.image_size) != list(student_config.image_size) or (
            tuple(teacher_config.heatmap_size) != tuple(student_config.heatmap_size)):
        raise ValueError(
            f"The {teacher_name} takes {teacher_config.image_size[0]}x{teacher_config.image_size[1]} crops with "
            f"{teacher_config.heatmap_size[0]}x{teacher_config.heatmap_size[1]} heatmaps, the student "
            f"{student_config.image_size[0]}x{student_config.image_size[1]} with {student_config.heatmap_size[0]}x"
            f"{student_config.heatmap_size[1]}; distillation feeds both the same crops, so these must agree (set the "
            "student's model.overrides.image_size / decoder)."
        )
    table = []
    for name in student_config.dataset_names:
        if name not in teacher_config.dataset_names:
            raise ValueError(f"The run's dataset {name!r} is not one of the {teacher_name}'s datasets "
                             f"{teacher_config.dataset_names}; distillation needs a teacher head for every dataset.")
        index = teacher_config.dataset_names.index(name)
        k_teacher = teacher_config.dataset_spec(index).num_keypoints
        k_student = student_config.dataset_spec(name).num_keypoints
        if k_teacher != k_student:
            raise ValueError(f"Dataset {name!r} has {k_student} keypoints in the run but {k_teacher} in the "
                             f"{teacher_name}.")
        table.append(index)
    return torch.tensor(table, dtype=torch.long)


def _fit_channels(tensor: torch.Tensor, channels: int) -> torch.Tensor:
    """Cut or zero-pad dim 1 of `(B, K, ...)` to `channels` (each dataset's keypoints are its first K channels)."""
    if tensor.shape[1] >= channels:
        return tensor[:, :channels]
    pad = tensor.new_zeros((tensor.shape[0], channels - tensor.shape[1], *tensor.shape[2:]))
    return torch.cat([tensor, pad], dim=1)


# ------------------------------------------------------------------------------------------------------ the loss
def heatmap_distillation_loss(student_heatmaps: torch.Tensor, teacher_heatmaps: torch.Tensor,
                              dataset_index: torch.Tensor, keypoint_counts: torch.Tensor,
                              loss_weights: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between student and teacher heatmaps, without target weights, aggregated like the ground-truth loss.

    For each dataset d present: the mean over its samples, its own K_d keypoints and the pixels, times `n_d / B` (and
    `loss_weights[d]`); summed over datasets. Equivalently `1/B * sum_i mean_{k < K_{d_i}, pixels} (S - T)^2 * w_{d_i}`,
    which is how it is computed (one vectorised pass, no per-dataset loop).

    Args:
        student_heatmaps, teacher_heatmaps: `(batch, max_num_keypoints, h, w)`.
        dataset_index: `(batch,)` dataset of each sample (the student's indices).
        keypoint_counts: `(num_datasets,)` keypoints of each dataset.
        loss_weights: `(num_datasets,)` per-dataset factors, or `None`.

    Returns:
        A float32 scalar.
    """
    if student_heatmaps.shape != teacher_heatmaps.shape:
        raise ValueError(f"Student heatmaps {tuple(student_heatmaps.shape)} and teacher heatmaps "
                         f"{tuple(teacher_heatmaps.shape)} differ in shape.")
    squared = (student_heatmaps.float() - teacher_heatmaps.float()).pow(2).mean(dim=(2, 3))  # (B, K_max)
    counts = keypoint_counts.to(squared.device)[dataset_index]  # (B,)
    own = torch.arange(squared.shape[1], device=squared.device)[None, :] < counts[:, None]
    per_sample = (squared * own).sum(dim=1) / counts.float()
    if loss_weights is not None:
        per_sample = per_sample * loss_weights.to(squared.device)[dataset_index]
    return per_sample.mean()


@dataclass
class DistillationOutput:
    """One step's loss and its parts (all float32 scalars) plus the student's outputs."""

    loss: torch.Tensor
    ground_truth_loss: torch.Tensor
    heatmap_loss: torch.Tensor
    outputs: Any


class DistillationLoss:
    """`loss(model, batch)`: the student's ground-truth loss plus `heatmap_weight` times the heatmap distillation loss
    against a frozen teacher run on the same batch (`torch.no_grad`, eval mode, its own dtype).

    Used as the training loop's `loss_fn` (training/train.py) and by `DistillationTrainer`. The teacher is moved to the
    batch's device on first use.

    Args:
        teacher: the frozen teacher (`load_teacher`).
        student_config: the student's config (its datasets are matched by name to the teacher's).
        heatmap_weight: the factor of the distillation term.
    """

    def __init__(self, teacher: VitPosePlusForPoseEstimation, student_config: VitPosePlusConfig,
                 heatmap_weight: float = 1.0):
        self.teacher = teacher
        self.heatmap_weight = float(heatmap_weight)
        self.dataset_table = teacher_dataset_table(teacher.config, student_config)
        self.keypoint_counts = torch.tensor([len(d["keypoint_names"]) for d in student_config.datasets])
        weights = student_config.loss_weights
        self.loss_weights = None if weights is None else torch.tensor([float(w) for w in weights])
        self.max_num_keypoints = student_config.max_num_keypoints
        # One dataset, the teacher's index a constant: pass an int so that the teacher needs no routing step.
        self._single = int(self.dataset_table[0]) if student_config.num_datasets == 1 else None

    @classmethod
    def from_folder(cls, teacher_folder: str, student_config: VitPosePlusConfig, heatmap_weight: float = 1.0,
                    dtype: str = "fp32", device: torch.device | str | None = None) -> DistillationLoss:
        """The loss with the teacher loaded from a model folder (see `load_teacher`)."""
        return cls(load_teacher(teacher_folder, dtype, device), student_config, heatmap_weight)

    @torch.no_grad()
    def teacher_heatmaps(self, pixel_values: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:
        """The teacher's heatmaps `(batch, student max_num_keypoints, h, w)` in float32 for student dataset indices."""
        device = pixel_values.device
        if next(self.teacher.parameters()).device != device:
            self.teacher.to(device)
        if self.teacher.training:  # e.g. a caller's model.train() reached it: the teacher stays frozen
            self.teacher.eval()
        table = self.dataset_table.to(device)
        index = self._single if self._single is not None else table[dataset_index]
        with torch.autocast(device_type=device.type, enabled=False):  # the teacher runs in its own dtype
            heatmaps = self.teacher(pixel_values, dataset_index=index).heatmaps
        return _fit_channels(heatmaps.float(), self.max_num_keypoints)

    def compute(self, model: Any, batch: dict[str, torch.Tensor]) -> DistillationOutput:
        """The loss of one batch with its parts; `batch` holds the collator's keys (`KeypointCollator`)."""
        # The teacher first: run while the student's activations are held, the same forward is measurably slower
        # (benchmarks/bench_distillation.py: about +40 % of the teacher's cost on CPU).
        teacher = self.teacher_heatmaps(batch["pixel_values"], batch["dataset_index"])
        outputs = model(**batch)
        distill = heatmap_distillation_loss(outputs.heatmaps, teacher, batch["dataset_index"], self.keypoint_counts,
                                            self.loss_weights)
        return DistillationOutput(outputs.loss + self.heatmap_weight * distill, outputs.loss.detach(),
                                  distill.detach(), outputs)

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.compute(model, batch).loss


def prepare_distillation(config: TrainingConfig, model: VitPosePlusForPoseEstimation,
                         device: torch.device | str | None = None) -> Any:
    """The training loop's loss for `config`, after putting the frozen knowledge token into the student.

    Without a `distillation` section (or with nothing to do) this is `pose_loss`; with `knowledge_token` the token
    file's token is copied into `model` (which `build_model_config` gave a token slot) and frozen; with
    `heatmap_weight > 0` the teacher is loaded and a `DistillationLoss` returned.
    """
    from .train import pose_loss

    distill = config.distillation
    if distill is None:
        return pose_loss
    if distill.knowledge_token:
        token = load_knowledge_token(distill.knowledge_token)
        add_knowledge_token(model, token.token)
        logger.info("Appended the frozen knowledge token of %s (learned on %s).", distill.knowledge_token,
                    token.metadata.get("teacher"))
    if distill.heatmap_weight > 0:
        return DistillationLoss.from_folder(distill.teacher, model.config, distill.heatmap_weight,
                                            distill.teacher_dtype, device)
    return pose_loss


# ------------------------------------------------------------------------------------------------------ token files
@dataclass
class KnowledgeToken:
    """A learned knowledge token: `token` `(1, 1, width)` in the student's width, and what made it."""

    token: torch.Tensor
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.token.shape[-1])


def save_knowledge_token(folder: str, token: torch.Tensor, metadata: dict[str, Any],
                         teacher_token: torch.Tensor | None = None) -> str:
    """Write `knowledge_token.safetensors` (`knowledge_token` `(1, 1, width)`, and the teacher-width token it maps to
    when a projection was used) and `knowledge_token.json` (the metadata) into `folder`; returns the token path."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    tensors = {"knowledge_token": token.detach().float().cpu().contiguous()}
    if teacher_token is not None:
        tensors["teacher_token"] = teacher_token.detach().float().cpu().contiguous()
    path = os.path.join(folder, TOKEN_FILE)
    save_file(tensors, path, metadata={"format": "vitpose-plus-knowledge-token", "width": str(token.shape[-1])})
    write_json(os.path.join(folder, TOKEN_METADATA_FILE), metadata)
    return path


def load_knowledge_token(path: str) -> KnowledgeToken:
    """Read a token file of `save_knowledge_token` (the JSON next to it is optional).

    Raises:
        FileNotFoundError / ValueError: naming the file when it is missing or holds no `(1, 1, width)` token.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No knowledge token file {path!r} (write one with `vitpose-plus distill token`).")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: not a safetensors knowledge token file ({err}).") from err
    token = tensors.get("knowledge_token")
    if token is None or token.ndim != 3 or token.shape[:2] != (1, 1):
        raise ValueError(f"{path}: expected a tensor 'knowledge_token' of shape (1, 1, width), found "
                         f"{ {k: tuple(v.shape) for k, v in tensors.items()} }.")
    metadata_path = os.path.join(os.path.dirname(path), TOKEN_METADATA_FILE)
    metadata = {}
    if os.path.isfile(metadata_path):
        with open(metadata_path, encoding="utf-8") as handle:
            metadata = json.load(handle)
    return KnowledgeToken(token, metadata)


def add_knowledge_token(model: VitPosePlusForPoseEstimation, token: torch.Tensor | None = None,
                        trainable: bool = False) -> VitPosePlusForPoseEstimation:
    """Give `model` a knowledge token, in place: a slot (`config.num_knowledge_tokens = 1`, a parameter initialised as
    the model's own init would) when it has none, then `token` copied in when given; frozen unless `trainable`.
    Everything else is untouched. Returns the model.

    Raises:
        ValueError: the token's width is not the model's (`token` must be `(1, 1, hidden_size)`), or the model uses
            windowed attention.
    """
    config = model.config
    embeddings = model.backbone.embeddings
    if token is not None and tuple(token.shape) != (1, 1, config.hidden_size):
        raise ValueError(f"The knowledge token has shape {tuple(token.shape)}, this model needs (1, 1, "
                         f"{config.hidden_size}): learn it with the student's config (`vitpose-plus distill token "
                         "--config STUDENT.yaml`), which gives the token the student's width.")
    if not config.num_knowledge_tokens:
        if config.window_size is not None:
            raise ValueError("A knowledge token needs global attention in every block (window_size=None).")
        reference = embeddings.position_embeddings
        slot = torch.empty(1, 1, config.hidden_size, dtype=reference.dtype, device=reference.device)
        nn.init.trunc_normal_(slot, mean=0.0, std=config.initializer_range)
        config.num_knowledge_tokens = 1
        embeddings.knowledge_token = nn.Parameter(slot)
    if token is not None:
        with torch.no_grad():
            embeddings.knowledge_token.copy_(token.to(embeddings.knowledge_token))
    embeddings.knowledge_token.requires_grad_(trainable)
    return model


# ------------------------------------------------------------------------------------------------------ token learning
class KnowledgeTokenLearner(nn.Module):
    """The knowledge token (paper eq. 4) trained through a frozen teacher with the ordinary pose loss.

    The token lives in the **student's** width. When that differs from the teacher's, the teacher sees
    `projection(token)`, a bias-free linear map trained jointly and discarded afterwards; the student later gets the
    raw `token`. Effect: the map has `d_teacher x d_student` free weights, so it can carry most of what the teacher
    needs while the token moves only part of the way from its initialisation (the JSON records how far:
    `token_relative_change`); what reaches the student is whatever the token itself learned, in a space the student
    never shared with the teacher. With equal widths there is no map and the student gets exactly the teacher's token.

    The teacher is kept outside the module's children on purpose: it is not trained, not checkpointed (only the token
    and the map are), and `train()` never reaches its BatchNorm or dropout.

    Args:
        teacher: the frozen teacher with a token slot (`add_knowledge_token(teacher, trainable=False)`).
        student_width: the width of the learned token.
        dataset_table: `(num_run_datasets,)` teacher dataset index of each run dataset.
        max_num_keypoints: channels of the batch's labels (the run's maximum keypoint count).
    """

    def __init__(self, teacher: VitPosePlusForPoseEstimation, student_width: int, dataset_table: torch.Tensor,
                 max_num_keypoints: int):
        super().__init__()
        if not teacher.config.num_knowledge_tokens:
            raise ValueError("The teacher needs a knowledge-token slot (add_knowledge_token).")
        self.__dict__["teacher"] = teacher  # not a child module (see the class docstring)
        teacher_width = teacher.config.hidden_size
        token = torch.empty(1, 1, student_width)
        nn.init.trunc_normal_(token, mean=0.0, std=teacher.config.initializer_range)
        self.token = nn.Parameter(token)
        self.register_buffer("initial_token", token.clone(), persistent=True)
        self.projection = nn.Linear(student_width, teacher_width, bias=False) if student_width != teacher_width \
            else None
        self.register_buffer("dataset_table", dataset_table.clone(), persistent=False)
        self.max_num_keypoints = int(max_num_keypoints)

    def teacher_token(self) -> torch.Tensor:
        """`(1, 1, teacher_width)`: what the teacher sees."""
        return self.token if self.projection is None else self.projection(self.token)

    def relative_change(self) -> float:
        """`|token - initial token| / |initial token|`."""
        with torch.no_grad():
            return float((self.token - self.initial_token).norm() / self.initial_token.norm())

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor, label_weights: torch.Tensor,
                dataset_index: torch.Tensor) -> Any:
        """The teacher's outputs (with its pose loss) on a batch of the run, the token in its slot."""
        teacher = self.teacher
        k_teacher = teacher.config.max_num_keypoints
        parameter = teacher.backbone.embeddings.knowledge_token
        token = self.teacher_token().to(parameter.dtype)
        return torch.func.functional_call(
            teacher, {TOKEN_PARAMETER: token}, (pixel_values,),
            {"dataset_index": self.dataset_table[dataset_index], "labels": _fit_channels(labels, k_teacher),
             "label_weights": _fit_channels(label_weights, k_teacher)},
        )


@dataclass
class TokenLearningResult:
    """Where the token was written (`None` when stopped early with a checkpoint), its metadata and the last step."""

    token_path: str | None
    metadata: dict[str, Any]
    step: int


def token_learning_config(config: TrainingConfig) -> TrainingConfig:
    """The run config of token learning: `distillation.token_learning`'s epochs, lr and warmup on a cosine schedule,
    no weight decay, no evaluation inside the loop; data, augmentation, batch size and runtime as in `config`."""
    settings = config.distillation.token_learning if config.distillation is not None else TokenLearningConfig()
    opt = replace(config.optimization, max_epochs=settings.max_epochs, milestone_epochs=[], milestones=[],
                  learning_rate=settings.learning_rate, weight_decay=0.0, warmup_steps=settings.warmup_steps,
                  schedule="cosine", min_lr_ratio=0.0)
    return replace(config, optimization=opt, runtime=replace(config.runtime, eval_every=0))


def learn_knowledge_token(config: TrainingConfig, teacher: str | None = None, resume: bool = False,
                          overwrite: bool = False, progress: bool = True, stop_after: int | None = None
                          ) -> TokenLearningResult:
    """Train the knowledge token on the frozen teacher with the ordinary pose loss on the run's training data, and
    write it to `runtime.output_dir` (`knowledge_token.safetensors` + `knowledge_token.json`).

    The token's width is the student's (`config.model`); the teacher is `teacher` or `distillation.teacher`. The run
    machinery is training/train.py's: the Accelerator, the output-folder policy and lock, the data, the schedule, the
    loop, checkpoints every `save_every` steps with exact `--resume`, and `log.jsonl`.

    Raises:
        ValueError: no teacher given, or the teacher does not fit the run (see `teacher_dataset_table`).
    """
    from accelerate.utils import set_seed

    from .train import (
        _save_checkpoint,
        _training_loop,
        begin_run,
        build_accelerator,
        build_loader_and_schedule,
        build_model_config,
        build_training_data,
        materialise_synthetic,
        prepare_output_folder,
        resolve_spec,
        resume_from_checkpoint,
    )

    teacher_dir = teacher or (config.distillation.teacher if config.distillation is not None else None)
    if teacher_dir is None:
        raise ValueError("Token learning needs a teacher: pass --teacher FOLDER or set distillation.teacher.")
    token_config = token_learning_config(config)
    settings = config.distillation.token_learning if config.distillation is not None else TokenLearningConfig()
    dtype = config.distillation.teacher_dtype if config.distillation is not None else "fp32"
    run, opt = token_config.runtime, token_config.optimization
    accelerator = build_accelerator(token_config)
    lock = prepare_output_folder(token_config, resume, overwrite, accelerator.is_main_process)
    try:
        materialise_synthetic(token_config, accelerator.is_main_process)
        accelerator.wait_for_everyone()
        specs = [resolve_spec(d) for d in token_config.datasets]
        student_config = build_model_config(token_config, specs)
        frozen = add_knowledge_token(load_teacher(teacher_dir, dtype, accelerator.device))
        table = teacher_dataset_table(frozen.config, student_config)
        data = build_training_data(token_config, student_config, specs)
        begin_run(run.output_dir, resume, overwrite, accelerator.is_main_process, "training_config.yaml",
                  token_config.to_dict())
        set_seed(run.seed)
        learner = KnowledgeTokenLearner(frozen, student_config.hidden_size, table, student_config.max_num_keypoints)
        optimizer = torch.optim.AdamW(learner.parameters(), lr=opt.learning_rate, betas=tuple(opt.betas),
                                      weight_decay=0.0)
        loader, schedule = build_loader_and_schedule(data, token_config, opt, accelerator.num_processes)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
        learner, optimizer, loader = accelerator.prepare(learner, optimizer, loader)
        accelerator.register_for_checkpointing(scheduler)
        log_path = os.path.join(run.output_dir, "log.jsonl")
        state = resume_from_checkpoint(accelerator, run.output_dir, resume, log_path)
        state = _training_loop(accelerator, learner, optimizer, scheduler, loader, data.sampler, token_config,
                               schedule, state, log_path, progress, stop_after)
        if run.save_every and state["step"] % run.save_every != 0:
            _save_checkpoint(accelerator, run, state)
        if state["step"] < schedule.max_steps:
            accelerator.end_training()
            return TokenLearningResult(None, {}, state["step"])

        learned = accelerator.unwrap_model(learner)
        metadata = {
            "format": "vitpose-plus knowledge token",
            "width": student_config.hidden_size,
            "teacher": os.path.abspath(teacher_dir),
            "teacher_width": frozen.config.hidden_size,
            "teacher_layers": frozen.config.num_hidden_layers,
            "teacher_experts": frozen.config.num_experts,
            "projection": learned.projection is not None,
            "datasets": student_config.dataset_names,
            "image_size": list(student_config.image_size),
            "steps": state["step"],
            "epochs": settings.max_epochs,
            "learning_rate": settings.learning_rate,
            "final_loss": _last_logged_loss(log_path),
            "token_norm": float(learned.token.detach().norm()),
            "token_relative_change": learned.relative_change(),
        }
        with torch.no_grad():
            teacher_token = learned.teacher_token().detach()
        if settings.evaluate:
            plain = load_teacher(teacher_dir, dtype, accelerator.device)
            with_token = add_knowledge_token(frozen, teacher_token)
            metadata["teacher_metrics"] = {
                "without_token": evaluate_teacher(accelerator, plain, token_config),
                "with_token": evaluate_teacher(accelerator, with_token, token_config),
            }
        path = None
        if accelerator.is_main_process:
            path = save_knowledge_token(run.output_dir, learned.token, metadata,
                                        teacher_token if learned.projection is not None else None)
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return TokenLearningResult(path or os.path.join(run.output_dir, TOKEN_FILE), metadata, state["step"])
    finally:
        lock.release()


def _last_logged_loss(log_path: str) -> float | None:
    if not os.path.exists(log_path):
        return None
    losses = [json.loads(line).get("loss") for line in open(log_path, encoding="utf-8") if line.strip()]
    losses = [v for v in losses if v is not None]
    return losses[-1] if losses else None


def evaluate_teacher(accelerator: Any, model: VitPosePlusForPoseEstimation, config: TrainingConfig
                     ) -> dict[str, dict[str, float]]:
    """The COCO-protocol metrics of a teacher on the run's validation splits, each dataset by name (the teacher's own
    dataset order may differ from the run's); every rank predicts its share."""
    from accelerate.utils import gather_object

    from vitpose_plus.evaluation.evaluate import predict_split, score_split

    from .train import trained_processor

    processor = trained_processor(model.config, config)
    metrics: dict[str, dict[str, float]] = {}
    for dataset in config.datasets:
        if dataset.val is None:
            continue
        prepared, records = predict_split(
            model, processor, dataset.val.annotations, dataset.val.images, dataset.name,
            detections_file=dataset.val.detections, mpii_gt_mat=dataset.val.mpii_gt_mat,
            batch_size=config.runtime.eval_batch_size, flip_test=config.runtime.flip_test, progress=False,
            shard=(accelerator.process_index, accelerator.num_processes),
        )
        gathered = gather_object(records) if accelerator.num_processes > 1 else records
        metrics[dataset.name] = score_split(prepared, gathered).metrics
    return metrics


# ------------------------------------------------------------------------------------------------------ Trainer
class DistillationTrainer(Trainer):
    """`transformers.Trainer` whose loss is a `DistillationLoss` (ground truth + heatmap distillation):

        distillation = DistillationLoss.from_folder("runs/teacher/model", student.config, heatmap_weight=1.0)
        add_knowledge_token(student, load_knowledge_token("runs/token/knowledge_token.safetensors").token)  # optional
        trainer = DistillationTrainer(model=student, distillation=distillation, args=..., train_dataset=...,
                                      data_collator=KeypointCollator(student.config.max_num_keypoints))

    The evaluation loss includes the distillation term too (the Trainer asks `compute_loss` for it).
    """

    def __init__(self, *args: Any, distillation: DistillationLoss, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.distillation = distillation

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        result = self.distillation.compute(model, inputs)
        return (result.loss, result.outputs) if return_outputs else result.loss


__all__ = [
    "DistillationLoss",
    "DistillationOutput",
    "DistillationTrainer",
    "KnowledgeToken",
    "KnowledgeTokenLearner",
    "TokenLearningResult",
    "add_knowledge_token",
    "evaluate_teacher",
    "heatmap_distillation_loss",
    "learn_knowledge_token",
    "load_knowledge_token",
    "load_teacher",
    "prepare_distillation",
    "save_knowledge_token",
    "teacher_dataset_table",
    "token_learning_config",
]
