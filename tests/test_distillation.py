"""Knowledge transfer (training/distillation.py): the knowledge token in the model, token learning, the heatmap
distillation loss, the `distillation` config section, resume with a teacher, and the Trainer."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import make_model, tiny_config, tiny_plus_config
from test_train import TINY_MODEL, final_weights, write_config

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation
from vitpose_plus.training.config import load_training_config
from vitpose_plus.training.distillation import (
    DistillationLoss,
    DistillationTrainer,
    KnowledgeTokenLearner,
    add_knowledge_token,
    heatmap_distillation_loss,
    learn_knowledge_token,
    load_knowledge_token,
    load_teacher,
    save_knowledge_token,
    teacher_dataset_table,
)
from vitpose_plus.training.train import train

MIXED_INDEX = torch.tensor([2, 0, 1, 0, 2, 1])


# ----------------------------------------------------------------------------------------------- functional reference
def functional_features(model: VitPosePlusForPoseEstimation, x: torch.Tensor, index: torch.Tensor,
                        token: torch.Tensor | None = None, mask_token: bool = False) -> torch.Tensor:
    """The backbone written out with functional ops (masked experts as the original), the knowledge token `token`
    `(1, 1, D)` appended after the patch tokens. With `mask_token`, no patch token may attend to it (its attention
    logit is -inf). Returns the patch feature map `(B, D, h, w)`."""
    cfg = model.config
    p = dict(model.named_parameters())
    dim, heads = cfg.hidden_size, cfg.num_attention_heads
    tokens = F.conv2d(x, p["backbone.embeddings.patch_embeddings.weight"],
                      p["backbone.embeddings.patch_embeddings.bias"], stride=16, padding=2)
    batch, _, gh, gw = tokens.shape
    n = gh * gw
    pos = p["backbone.embeddings.position_embeddings"]
    tokens = tokens.flatten(2).transpose(1, 2) + pos[:, 1:] + pos[:, :1]
    if token is not None:
        tokens = torch.cat([tokens, token.expand(batch, 1, dim)], dim=1)
    bias = torch.zeros(tokens.shape[1], tokens.shape[1])
    if token is not None and mask_token:
        bias[:n, n:] = float("-inf")
    experts = [cfg.expert_of(int(d)) for d in index]
    for i in range(cfg.num_hidden_layers):
        pre = f"backbone.layers.{i}."
        h = F.layer_norm(tokens, (dim,), p[pre + "norm1.weight"], p[pre + "norm1.bias"], cfg.layer_norm_eps)
        qkv = F.linear(h, p[pre + "attention.qkv.weight"], p[pre + "attention.qkv.bias"])
        q, k, v = qkv.reshape(batch, -1, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (dim // heads) ** -0.5 + bias, dim=-1)
        a = (attn @ v).transpose(1, 2).reshape(batch, -1, dim)
        tokens = tokens + F.linear(a, p[pre + "attention.proj.weight"], p[pre + "attention.proj.bias"])
        h = F.layer_norm(tokens, (dim,), p[pre + "norm2.weight"], p[pre + "norm2.bias"], cfg.layer_norm_eps)
        h = F.gelu(F.linear(h, p[pre + "mlp.fc1.weight"], p[pre + "mlp.fc1.bias"]))
        out = F.linear(h, p[pre + "mlp.fc2.weight"], p[pre + "mlp.fc2.bias"])
        if cfg.num_experts > 1:
            mask = torch.tensor(experts)
            expert_out = sum(F.linear(h, p[pre + f"mlp.experts.{e}.weight"], p[pre + f"mlp.experts.{e}.bias"])
                             * (mask == e).view(-1, 1, 1).float() for e in range(cfg.num_experts))
            out = torch.cat([out, expert_out], dim=-1)
        tokens = tokens + out
    tokens = F.layer_norm(tokens, (dim,), p["backbone.layernorm.weight"], p["backbone.layernorm.bias"],
                          cfg.layer_norm_eps)
    return tokens[:, :n].transpose(1, 2).reshape(batch, dim, gh, gw)


def heads_on(model: VitPosePlusForPoseEstimation, features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Each sample's own head on its features, zero-padded to max_num_keypoints."""
    out = torch.zeros(features.shape[0], model.config.max_num_keypoints, *model.config.heatmap_size)
    for n, d in enumerate(index.tolist()):
        heatmaps = model.heads[d](features[n : n + 1])
        out[n, : heatmaps.shape[1]] = heatmaps[0]
    return out


def with_token(config: VitPosePlusConfig) -> VitPosePlusConfig:
    data = config.to_dict()
    for key in ("architectures", "auto_map", "transformers_version", "_name_or_path", "model_type"):
        data.pop(key, None)
    return type(config)(**{**data, "num_knowledge_tokens": 1})


# ----------------------------------------------------------------------------------------------- the model
def test_zero_tokens_is_the_model_without_the_field(tmp_path, pixel_values):
    """num_knowledge_tokens=0 builds exactly today's model: same parameters (and the same init draws), same outputs,
    and a folder written before the field existed loads to the same heatmaps."""
    config = tiny_plus_config()
    explicit = tiny_plus_config(num_knowledge_tokens=0)
    torch.manual_seed(3)
    a = VitPosePlusForPoseEstimation(config).eval()
    torch.manual_seed(3)
    b = VitPosePlusForPoseEstimation(explicit).eval()
    torch.manual_seed(3)
    c = VitPosePlusForPoseEstimation(tiny_plus_config(num_knowledge_tokens=1)).eval()
    assert a.state_dict().keys() == b.state_dict().keys()
    assert not any("knowledge" in key for key in a.state_dict())
    assert set(c.state_dict()) - set(a.state_dict()) == {"backbone.embeddings.knowledge_token"}
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
        assert torch.equal(value, c.state_dict()[key]), key  # a token slot leaves every other init draw alone
    model = make_model(config)
    with torch.no_grad():
        expected = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        backbone = model.backbone(pixel_values, dataset_index=MIXED_INDEX, output_hidden_states=True)
    assert backbone.last_hidden_state.shape == (6, 12, 32) and backbone.hidden_states[0].shape == (6, 12, 32)
    torch.testing.assert_close(heads_on(model, functional_features(model, pixel_values, MIXED_INDEX), MIXED_INDEX),
                               expected, atol=1e-5, rtol=0)
    model.save_pretrained(tmp_path)
    stored = json.loads((tmp_path / "config.json").read_text())
    assert stored.pop("num_knowledge_tokens") == 0
    (tmp_path / "config.json").write_text(json.dumps(stored))  # as written before the field existed
    loaded = VitPosePlusForPoseEstimation.from_pretrained(tmp_path).eval()
    assert loaded.config.num_knowledge_tokens == 0
    with torch.no_grad():
        assert torch.equal(loaded(pixel_values, dataset_index=MIXED_INDEX).heatmaps, expected)


def test_heads_see_only_patch_tokens(pixel_values):
    model = make_model(tiny_plus_config(num_knowledge_tokens=1))
    token = model.backbone.embeddings.knowledge_token
    assert token.shape == (1, 1, 32)
    out = model.backbone(pixel_values, dataset_index=MIXED_INDEX, output_hidden_states=True, output_attentions=True)
    assert out.last_hidden_state.shape == (6, 12, 32) and out.feature_map.shape == (6, 32, 4, 3)
    assert out.hidden_states[0].shape == (6, 13, 32) and out.attentions[0].shape == (6, 4, 13, 13)
    torch.testing.assert_close(out.hidden_states[0][:, 12:], token.expand(6, 1, 32))  # appended, no position term
    with torch.no_grad():
        heatmaps = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        reference = heads_on(model, functional_features(model, pixel_values, MIXED_INDEX, token), MIXED_INDEX)
        torch.testing.assert_close(heatmaps, reference, atol=1e-5, rtol=0)
        # The same weights without the token equal the token model whose patch tokens may not attend to the token.
        plain = VitPosePlusForPoseEstimation(tiny_plus_config()).eval()
        missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
        assert missing == [] and unexpected == ["backbone.embeddings.knowledge_token"]
        without = plain(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        masked = heads_on(model, functional_features(model, pixel_values, MIXED_INDEX, token, mask_token=True),
                          MIXED_INDEX)
        torch.testing.assert_close(masked, without, atol=1e-5, rtol=0)
        masked_other = heads_on(model, functional_features(model, pixel_values, MIXED_INDEX, token * -3 + 1,
                                                           mask_token=True), MIXED_INDEX)
        assert torch.equal(masked, masked_other)  # masked out, the token's value does not matter at all
        assert (heatmaps - without).abs().max() > 1e-4  # unmasked, it does


def test_token_model_saves_merges_and_refuses_transformers(tmp_path, pixel_values):
    model = make_model(tiny_plus_config(num_knowledge_tokens=1))
    model.save_pretrained(tmp_path)
    loaded = VitPosePlusForPoseEstimation.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(pixel_values, dataset_index=MIXED_INDEX).heatmaps
        assert torch.equal(loaded(pixel_values, dataset_index=MIXED_INDEX).heatmaps, expected)
        dense = model.merge_experts("aic")
        assert dense.config.num_knowledge_tokens == 1
        own = model(pixel_values, dataset_index="aic").heatmaps[:, :14]
        assert (dense(pixel_values).heatmaps - own).abs().max() <= 1e-6
    from vitpose_plus.conversion.transformers_vitpose import to_transformers_vitpose

    with pytest.raises(ValueError, match="cannot be expressed as transformers' VitPose: .*a knowledge token"):
        to_transformers_vitpose(dense)


def test_token_config_validation():
    with pytest.raises(ValueError, match=r"`num_knowledge_tokens` must be 0 or 1, got 2"):
        tiny_config(num_knowledge_tokens=2)
    with pytest.raises(ValueError, match=r"needs global attention"):
        tiny_config(num_knowledge_tokens=1, image_size=(64, 64), window_size=2)
    with pytest.raises(ValueError, match=r"'num_knowledge_token' \(did you mean 'num_knowledge_tokens'\?\)"):
        tiny_config(num_knowledge_token=1)
    with pytest.raises(ValueError, match="has no knowledge token"):
        make_model(tiny_config()).freeze_all_but_knowledge_token()


def test_token_training_changes_only_the_token(pixel_values):
    model = make_model(tiny_plus_config(num_knowledge_tokens=1)).freeze_all_but_knowledge_token().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = model.layer_decay_parameter_groups(1e-2, weight_decay=0.1, layer_decay=0.9)
    assert [g["param_names"] for g in groups] == [["backbone.embeddings.knowledge_token"]]
    assert groups[0]["weight_decay"] == 0.0 and groups[0]["layer_id"] == 0
    optimizer = torch.optim.AdamW(groups)
    labels = torch.rand(6, 17, 16, 12, generator=torch.Generator().manual_seed(2))
    losses = []
    for _ in range(5):
        optimizer.zero_grad()
        loss = model(pixel_values, dataset_index=MIXED_INDEX, labels=labels).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == ["backbone.embeddings.knowledge_token"]  # BatchNorm statistics too stayed (eval mode)
    assert losses[-1] < losses[0]


# ----------------------------------------------------------------------------------------------- token learning
def test_token_learner_through_a_wider_teacher_changes_only_token_and_map(pixel_values):
    teacher = add_knowledge_token(make_model(tiny_plus_config(hidden_size=48, part_features=12)))
    teacher.requires_grad_(False)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = tiny_plus_config(datasets=["mpii", "coco"])  # another order: matched by name
    table = teacher_dataset_table(teacher.config, student)
    assert table.tolist() == [2, 0]
    learner = KnowledgeTokenLearner(teacher, 32, table, student.max_num_keypoints).train()
    assert [name for name, _ in learner.named_parameters()] == ["token", "projection.weight"]
    assert not teacher.training  # train() never reaches the teacher
    optimizer = torch.optim.AdamW(learner.parameters(), lr=1e-2, weight_decay=0.0)
    index = torch.tensor([0, 1, 1, 0, 0, 1])
    labels = torch.rand(6, 17, 16, 12, generator=torch.Generator().manual_seed(4))
    labels[index == 0, 16:] = 0
    weights = torch.ones(6, 17)
    weights[index == 0, 16:] = 0
    token_before = learner.token.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        out = learner(pixel_values, labels, weights, index)
        out.loss.backward()
        optimizer.step()
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert not torch.equal(learner.token, token_before) and learner.relative_change() > 0
    # The loss is the teacher's own pose loss with the projected token in its slot and its own dataset indices.
    with torch.no_grad():
        add_knowledge_token(teacher, learner.teacher_token())
        direct = teacher(pixel_values, dataset_index=table[index], labels=labels, label_weights=weights).loss
        torch.testing.assert_close(learner(pixel_values, labels, weights, index).loss, direct, atol=1e-7, rtol=1e-6)


def test_learn_knowledge_token_writes_the_token_and_checks_the_teacher(tmp_path, capsys, monkeypatch):
    from vitpose_plus.cli import main

    teacher_dir = tmp_path / "teacher"
    make_model(VitPosePlusConfig(**{**TINY_MODEL, "hidden_size": 48, "part_features": 12},
                                 datasets=["ap10k", "coco"])).save_pretrained(teacher_dir)
    # A student config may name the token this command writes (it need not exist yet).
    path = write_config(tmp_path, distillation={"token_learning": {"max_epochs": 1, "learning_rate": 1e-2}})
    monkeypatch.chdir(tmp_path)  # --teacher is relative to the working directory, not to the config
    assert main(["distill", "token", "--teacher", "teacher", "--config", path, "--no-progress",
                 "--set", "distillation.knowledge_token=missing.safetensors"]) == 0
    printed = capsys.readouterr().out
    assert "knowledge token (width 32, teacher width 48, through a linear map)" in printed
    assert "teacher coco: AP" in printed and "token saved to" in printed
    token = load_knowledge_token(str(tmp_path / "run" / "knowledge_token.safetensors"))
    assert token.width == 32 and token.metadata["teacher_width"] == 48 and token.metadata["projection"]
    assert token.metadata["datasets"] == ["coco", "ap10k"] and token.metadata["steps"] >= 1
    assert token.metadata["token_relative_change"] > 0.01
    config = load_training_config(path)
    metrics = token.metadata["teacher_metrics"]
    assert set(metrics) == {"without_token", "with_token"} and set(metrics["with_token"]) == {"coco"}
    assert (tmp_path / "run" / "knowledge_token.json").exists()
    with pytest.raises(FileExistsError, match="previous run"):  # the output-folder policy of every run
        learn_knowledge_token(config, teacher=str(teacher_dir), progress=False)
    other = tmp_path / "other"
    torch.manual_seed(0)
    VitPosePlusForPoseEstimation(VitPosePlusConfig(**{**TINY_MODEL, "image_size": [128, 96]},
                                                   datasets=["coco", "ap10k"])).save_pretrained(other)
    with pytest.raises(ValueError, match=r"teacher takes 128x96 crops .* the student 64x48"):
        learn_knowledge_token(config, teacher=str(other), overwrite=True, progress=False)


# ----------------------------------------------------------------------------------------------- the loss
def direct_distillation_loss(student, teacher, index, keypoints, loss_weights=None):
    """Per dataset: n_d / B * mean over its samples, its own keypoints and pixels of (S - T)^2, summed."""
    total = 0.0
    for d, k in enumerate(keypoints):
        rows = index == d
        if not rows.any():
            continue
        term = ((student[rows, :k] - teacher[rows, :k]) ** 2).mean() * rows.sum() / len(index)
        total = total + term * (1.0 if loss_weights is None else loss_weights[d])
    return total


def test_distillation_loss_equals_direct_computation():
    generator = torch.Generator().manual_seed(9)
    student = torch.rand(6, 17, 16, 12, generator=generator)
    teacher = torch.rand(6, 17, 16, 12, generator=generator)
    counts = torch.tensor([17, 14, 16])
    ours = heatmap_distillation_loss(student, teacher, MIXED_INDEX, counts)
    torch.testing.assert_close(ours, torch.as_tensor(direct_distillation_loss(student, teacher, MIXED_INDEX,
                                                                              [17, 14, 16])), atol=0, rtol=1e-6)
    weighted = heatmap_distillation_loss(student, teacher, MIXED_INDEX, counts, torch.tensor([1.0, 0.5, 2.0]))
    expected = direct_distillation_loss(student, teacher, MIXED_INDEX, [17, 14, 16], [1.0, 0.5, 2.0])
    torch.testing.assert_close(weighted, torch.as_tensor(expected), atol=0, rtol=1e-6)
    # It is the model's JointsMSE with every target weight 1 (no visibility mask).
    model = make_model(tiny_plus_config())
    torch.testing.assert_close(ours, model.compute_loss(student, teacher, None, MIXED_INDEX), atol=0, rtol=1e-6)


def test_distillation_loss_object_runs_the_mapped_teacher(pixel_values):
    student = make_model(tiny_plus_config(datasets=["coco", "aic"], num_experts=2)).train()
    teacher = make_model(tiny_plus_config(hidden_size=48, part_features=12, datasets=["aic", "mpii", "coco"]))
    loss_fn = DistillationLoss(teacher.requires_grad_(False), student.config, heatmap_weight=0.5)
    index = torch.tensor([1, 0, 0, 1, 1, 0])
    batch = {"pixel_values": pixel_values, "labels": torch.rand(6, 17, 16, 12), "label_weights": torch.ones(6, 17),
             "dataset_index": index}
    torch.manual_seed(0)
    result = loss_fn.compute(student, batch)
    with torch.no_grad():
        expected_teacher = teacher(pixel_values, dataset_index=torch.tensor([0, 2, 2, 0, 0, 2])).heatmaps
        torch.manual_seed(0)
        outputs = student(**batch)
    assert not teacher.training and result.loss.requires_grad
    direct = direct_distillation_loss(outputs.heatmaps, expected_teacher, index, [17, 14])
    torch.testing.assert_close(result.heatmap_loss, torch.as_tensor(direct), atol=0, rtol=1e-5)
    torch.testing.assert_close(result.loss.detach(), outputs.loss + 0.5 * direct, atol=0, rtol=1e-5)
    result.loss.backward()
    assert all(p.grad is None for p in teacher.parameters())


def test_teacher_must_cover_the_run():
    with pytest.raises(ValueError, match=r"dataset 'mpii' is not one of the teacher's datasets \['coco', 'aic'\]"):
        teacher_dataset_table(tiny_plus_config(datasets=["coco", "aic"], num_experts=2), tiny_config(datasets=["mpii"]))
    other = {**tiny_config().datasets[0], "name": "mpii"}  # 17 keypoints under MPII's name
    with pytest.raises(ValueError, match=r"'mpii' has 17 keypoints in the run but 16 in the teacher"):
        teacher_dataset_table(tiny_config(datasets=["mpii"]), tiny_config(datasets=[other]))
    with pytest.raises(ValueError, match=r"needs \(1, 1, 32\)"):
        add_knowledge_token(make_model(tiny_config()), torch.zeros(1, 1, 48))


# ----------------------------------------------------------------------------------------------- config and runs
def write_teacher_and_token(tmp_path, width: int = 48) -> tuple[str, str]:
    teacher_dir = tmp_path / "teacher"
    torch.manual_seed(1)
    make_model(VitPosePlusConfig(**{**TINY_MODEL, "hidden_size": width, "part_features": 12},
                                 datasets=["coco", "ap10k"])).save_pretrained(teacher_dir)
    token_path = save_knowledge_token(str(tmp_path / "token"), torch.randn(1, 1, 32), {"teacher": "test"})
    return str(teacher_dir), token_path


def test_distillation_config_section_is_validated(tmp_path):
    teacher, token = write_teacher_and_token(tmp_path)
    with pytest.raises(ValueError, match=r"unknown key 'heatmap_wieght' \(did you mean 'heatmap_weight'\?\)"):
        load_training_config(write_config(tmp_path, distillation={"teacher": teacher, "heatmap_wieght": 1.0}))
    with pytest.raises(ValueError, match=r"distillation.heatmap_weight = -1.0: expected >= 0"):
        load_training_config(write_config(tmp_path, distillation={"teacher": teacher, "heatmap_weight": -1}))
    with pytest.raises(ValueError, match=r"heatmap_weight = 1.0 needs distillation.teacher"):
        load_training_config(write_config(tmp_path, distillation={"heatmap_weight": 1}))
    with pytest.raises(FileNotFoundError, match=r"distillation.teacher = .*nowhere.* is not a model folder"):
        load_training_config(write_config(tmp_path, distillation={"teacher": "nowhere", "heatmap_weight": 1}))
    with pytest.raises(FileNotFoundError, match=r"distillation.knowledge_token = .*missing.safetensors"):
        load_training_config(write_config(tmp_path, distillation={"knowledge_token": "missing.safetensors"}))
    with pytest.raises(ValueError, match=r"teacher_dtype = 'int8': expected 'fp32', 'bf16' or 'fp16'"):
        load_training_config(write_config(tmp_path, distillation={"teacher": teacher, "teacher_dtype": "int8"}))
    with pytest.raises(ValueError, match=r"token_learning.max_epochs = 0: expected a positive integer"):
        load_training_config(write_config(tmp_path, distillation={"token_learning": {"max_epochs": 0}}))
    config = load_training_config(write_config(tmp_path, distillation={
        "teacher": "teacher", "heatmap_weight": 2, "knowledge_token": "token/knowledge_token.safetensors"}))
    assert config.distillation.teacher == teacher and config.distillation.knowledge_token == token  # relative paths
    assert config.distillation.heatmap_weight == 2.0 and config.distillation.teacher_dtype == "fp32"


def test_resume_with_a_teacher_and_token_is_exact(tmp_path):
    teacher, token = write_teacher_and_token(tmp_path)
    distillation = {"teacher": teacher, "heatmap_weight": 1.0, "knowledge_token": token}
    straight = load_training_config(write_config(tmp_path / "a", distillation=distillation))
    result = train(straight, progress=False)
    interrupted = load_training_config(write_config(tmp_path / "b", distillation=distillation))
    assert train(interrupted, progress=False, stop_after=4).model_dir is None
    resumed = train(load_training_config(write_config(tmp_path / "b", distillation=distillation)), resume=True,
                    progress=False)
    assert resumed.step == 6
    a, b = final_weights(tmp_path / "a" / "run"), final_weights(tmp_path / "b" / "run")
    assert a.keys() == b.keys() and "backbone.embeddings.knowledge_token" in a
    for name in a:
        assert torch.equal(a[name], b[name]), name
    # The student carries the frozen token, unchanged by training.
    student = VitPosePlusForPoseEstimation.from_pretrained(result.model_dir)
    assert student.config.num_knowledge_tokens == 1
    assert torch.equal(student.backbone.embeddings.knowledge_token, load_knowledge_token(token).token)
    # The teacher changed the run: the same config without it ends elsewhere.
    plain = load_training_config(write_config(tmp_path / "c", distillation={"knowledge_token": token}))
    train(plain, progress=False)
    c = final_weights(tmp_path / "c" / "run")
    assert not torch.equal(a["heads.0.conv.weight"], c["heads.0.conv.weight"])


def test_trainer_distillation_step(tmp_path):
    from transformers import TrainingArguments

    from vitpose_plus.data.datasets import load_keypoint_dataset
    from vitpose_plus.data.synthetic import make_synthetic_dataset
    from vitpose_plus.modeling import VitPosePlusImageProcessor
    from vitpose_plus.training.data_pipeline import TopDownTrainingDataset
    from vitpose_plus.training.trainer_utils import KeypointCollator, trainer_arguments
    from vitpose_plus.training.transforms import TopDownTransform

    teacher_dir, token = write_teacher_and_token(tmp_path)
    annotations = make_synthetic_dataset("coco", 4, 0, tmp_path / "data", image_size=(96, 96))
    rows = load_keypoint_dataset(annotations, tmp_path / "data", "coco")
    config = VitPosePlusConfig(**{k: v for k, v in TINY_MODEL.items() if k not in ("num_experts", "part_features")},
                               datasets=["coco"])
    torch.manual_seed(0)
    student = add_knowledge_token(VitPosePlusForPoseEstimation(config), load_knowledge_token(token).token)
    distillation = DistillationLoss.from_folder(teacher_dir, student.config, heatmap_weight=1.0)
    teacher_before = {k: v.clone() for k, v in distillation.teacher.state_dict().items()}
    processor = VitPosePlusImageProcessor.from_model_config(config)
    dataset = TopDownTrainingDataset(rows, TopDownTransform(processor, 0, train=True))
    args = TrainingArguments(str(tmp_path / "out"), **trainer_arguments(), report_to=[], max_steps=2,
                             per_device_train_batch_size=4, learning_rate=1e-3, save_strategy="no", use_cpu=True)
    trainer = DistillationTrainer(model=student, distillation=distillation, args=args, train_dataset=dataset,
                                  data_collator=KeypointCollator(config.max_num_keypoints))
    result = trainer.train()
    assert result.global_step == 2 and math.isfinite(result.training_loss)
    for key, value in distillation.teacher.state_dict().items():
        assert torch.equal(value, teacher_before[key]), key
    assert torch.equal(student.backbone.embeddings.knowledge_token, load_knowledge_token(token).token)
    batch = KeypointCollator(config.max_num_keypoints)([dataset[i] for i in range(4)])
    student.eval()
    with torch.no_grad():
        loss = trainer.compute_loss(student, batch)
        outputs = student(**batch)
        teacher = distillation.teacher(batch["pixel_values"], dataset_index="coco").heatmaps
    expected = outputs.loss + direct_distillation_loss(outputs.heatmaps, teacher, batch["dataset_index"], [17])
    torch.testing.assert_close(loss, expected, atol=0, rtol=1e-5)


def test_teacher_in_bf16_is_frozen_and_close(tmp_path, pixel_values):
    teacher_dir, _ = write_teacher_and_token(tmp_path)
    fp32, bf16 = load_teacher(teacher_dir), load_teacher(teacher_dir, "bf16")
    assert next(bf16.parameters()).dtype == torch.bfloat16 and not any(p.requires_grad for p in bf16.parameters())
    student = tiny_config(datasets=["coco", "ap10k"])
    a = DistillationLoss(fp32, student).teacher_heatmaps(pixel_values, torch.tensor([0, 1, 0, 1, 0, 1]))
    b = DistillationLoss(bf16, student).teacher_heatmaps(pixel_values, torch.tensor([0, 1, 0, 1, 0, 1]))
    assert b.dtype == torch.float32 and (a - b).abs().max() < 0.05 * a.abs().max()


def test_fine_tuning_init_from_a_model_without_token():
    from vitpose_plus.conversion.weight_transfer import transfer_weights

    source, target = make_model(tiny_config()), VitPosePlusForPoseEstimation(tiny_config(num_knowledge_tokens=1))
    token_before = target.backbone.embeddings.knowledge_token.detach().clone()
    report = transfer_weights(source, target)  # strict: only the token may stay fresh
    assert report.result.initialised == {
        "backbone.embeddings.knowledge_token": "the source model has no knowledge token (distillation.knowledge_token "
                                               "sets it)"}
    assert torch.equal(target.backbone.embeddings.knowledge_token, token_before)
    assert torch.equal(target.backbone.layers[0].mlp.fc1.weight, source.backbone.layers[0].mlp.fc1.weight)
