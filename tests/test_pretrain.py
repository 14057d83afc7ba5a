"""MAE pre-training runs (training/pretrain.py, training/pretraining_config.py): the command end to end, its folder as
`train`'s `model.mae_checkpoint` (dense and ViTPose+), exact resume, pictures, data sets and config validation."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
import torch
from helpers import write_yaml_config

from vitpose_plus.modeling import VitPosePlusForMaskedImageModeling
from vitpose_plus.training.pretrain import (
    build_pretraining_data,
    build_pretraining_optimizer,
    picture_batch,
    pretrain,
    pretraining_learning_rate,
    pretraining_schedule,
)
from vitpose_plus.training.pretraining_config import build_mae_config, load_pretraining_config
from vitpose_plus.training.pretraining_data import MAEPretrainingTransform, pretraining_processor

TINY_MAE = {
    "image_size": [64, 48],
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "decoder_hidden_size": 16,
    "decoder_num_hidden_layers": 1,
    "decoder_num_attention_heads": 4,
}


def write_config(tmp_path, **sections) -> str:
    """A tiny pre-training config: two synthetic sets (person crops of one, whole images of the other)."""
    config = {
        "runtime": {"output_dir": str(tmp_path / "run"), "log_every": 1, "save_every": 3, "picture_every": 3,
                    "picture_samples": 3, "trackers": []},
        "model": {"overrides": TINY_MAE},
        "optimization": {"batch_size": 4, "max_steps": 6, "learning_rate": 2e-3, "warmup_steps": 2},
        "datasets": [
            {"name": "coco", "synthetic": {"train_images": 4, "val_images": 0, "seed": 0, "image_size": [96, 96]}},
            {"name": "ap10k", "mode": "whole",
             "synthetic": {"train_images": 4, "val_images": 0, "seed": 1, "image_size": [96, 96]}},
        ],
    }
    return write_yaml_config(tmp_path, config, sections, "pretrain.yaml")


def checkpoint_weights(output_dir) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    checkpoints = sorted((output_dir / "checkpoints").iterdir(), key=lambda p: int(p.name.split("_")[1]))
    return load_file(str(checkpoints[-1] / "model.safetensors"))


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """One tiny pre-training run through the CLI; returns (config path, output folder, stdout)."""
    import contextlib
    import io

    from vitpose_plus.cli import main

    tmp = tmp_path_factory.mktemp("pretrain")
    path = write_config(tmp)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["pretrain", "--config", path, "--no-progress"]) == 0
    return path, tmp / "run", out.getvalue()


# ------------------------------------------------------------------------------------------------------ the run
def test_pretrain_command_writes_model_log_and_pictures(pretrained):
    from transformers import AutoModelForPreTraining

    from vitpose_plus.file_io import load_model_folder
    from vitpose_plus.hub_cards.publish import MAE_REMOTE_CODE_FILES

    path, run, stdout = pretrained
    assert f"MAE model saved to {run / 'model'}" in stdout and "model.mae_checkpoint=" in stdout
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(math.isfinite(r["loss"]) and 0 < r["loss"] < 3 for r in records)
    files = {p.name for p in (run / "model").iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md",
            *MAE_REMOTE_CODE_FILES} <= files
    model = load_model_folder(run / "model")  # MODEL_CLASSES knows the MAE model_type
    assert type(model) is VitPosePlusForMaskedImageModeling and model.config.hidden_size == 32
    assert type(AutoModelForPreTraining.from_pretrained(run / "model")) is VitPosePlusForMaskedImageModeling
    assert "vitpose-plus train" in (run / "model" / "README.md").read_text()
    assert sorted(p.name for p in (run / "pictures").iterdir()) == ["step_3.png", "step_6.png"]
    assert (run / "pretraining_config.yaml").exists()
    # The last picture is the saved model's reconstruction of the fixed picture samples (their epoch-0 crops and
    # masks): three rows of (original, masked, reconstruction), drawn 2x for inputs this small.
    config = load_pretraining_config(path)
    from vitpose_plus.training.train import materialise_synthetic

    materialise_synthetic(config, True, splits=("train",))
    batch = picture_batch(build_pretraining_data(config, build_mae_config(config)), 3)
    from vitpose_plus.training.mae_pictures import render_reconstructions

    expected = render_reconstructions(model, batch["pixel_values"], noise=batch["noise"], num_samples=3, upscale=2)
    picture = cv2.cvtColor(cv2.imread(str(run / "pictures" / "step_6.png")), cv2.COLOR_BGR2RGB)
    assert picture.shape == (18 + 3 * 128 + 4 * 2, 3 * 96 + 4 * 2, 3)
    np.testing.assert_array_equal(picture, expected)
    # The folder policy of `train`: a second run into the same folder needs --resume or --overwrite.
    with pytest.raises(FileExistsError, match=r"previous run .*--resume .*--overwrite"):
        pretrain(load_pretraining_config(path), progress=False)


@pytest.mark.parametrize("experts", [1, 3])
def test_pretrained_folder_initialises_vitpose_and_vitpose_plus_in_train(pretrained, tmp_path, experts):
    """`train` takes the folder as model.mae_checkpoint: every backbone tensor comes from it (ViTPose+: fc2 split
    into the shared part and identical experts), only the decoder is left out, and the final norm starts at 1 / 0
    as in the original ViTPose initialisation."""
    from safetensors.torch import load_file
    from test_train import write_config as write_training_config

    from vitpose_plus.training.config import load_training_config
    from vitpose_plus.training.train import build_model, build_model_config, resolve_spec, train

    _, run, _ = pretrained
    mae = load_file(str(run / "model" / "model.safetensors"))
    overrides = {"image_size": [64, 48], "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
                 "num_experts": experts, "part_features": 8 if experts > 1 else 0, "deconv_channels": [16, 16]}
    datasets = [{"name": name, "synthetic": {"train_images": 4, "val_images": 2 if i == 0 else 0, "seed": i,
                                             "image_size": [96, 96]}}
                for i, name in enumerate(["coco", "ap10k", "aic"][: max(experts, 1)])]
    config = load_training_config(write_training_config(
        tmp_path, model={"overrides": overrides, "mae_checkpoint": str(run / "model")}, datasets=datasets,
        optimization={"max_steps": 2}))
    model_config = build_model_config(config, [resolve_spec(d) for d in config.datasets])
    pose = build_model(config, model_config).state_dict()
    backbone = {k for k in pose if k.startswith("backbone.")}
    norm = {"backbone.layernorm.weight", "backbone.layernorm.bias"}
    for key in sorted(backbone - norm):
        if ".mlp.experts." in key:
            layer, param = key.split(".")[2], key.rsplit(".", 1)[1]
            expected = mae[f"backbone.layers.{layer}.mlp.fc2.{param}"][24:]
        elif experts > 1 and ".mlp.fc2." in key:
            expected = mae[key][:24]
        else:
            expected = mae[key]
        torch.testing.assert_close(pose[key], expected, atol=0, rtol=0, msg=key)
    assert torch.equal(pose["backbone.layernorm.weight"], torch.ones(32))
    assert {k for k in mae if k.startswith("backbone.")} <= backbone  # each was compared above under its own name
    # The accounting of the same call: the backbone mapped, the decoder (and the final norm) ignored, none dropped.
    from vitpose_plus.conversion.convert_mae import init_from_mae_state_dict, read_mae_state_dict

    accounting = init_from_mae_state_dict(read_mae_state_dict(run / "model"), model_config)
    assert set(accounting.mapped) == {k for k in mae if k.startswith("backbone.")} - norm
    assert set(accounting.ignored) == {k for k in mae if k.startswith("decoder.")} | norm
    if experts == 1:  # and the fine-tuning runs from it end to end
        result = train(config, progress=False)
        assert result.step == 2 and set(result.metrics) == {"coco"}


def test_resume_equals_uninterrupted_pretraining(tmp_path):
    straight = pretrain(load_pretraining_config(write_config(tmp_path / "a")), progress=False)
    assert straight.step == 6 and straight.model_dir is not None
    first = pretrain(load_pretraining_config(write_config(tmp_path / "b")), progress=False, stop_after=4)
    assert first.step == 4 and first.model_dir is None
    resumed = pretrain(load_pretraining_config(write_config(tmp_path / "b")), resume=True, progress=False)
    assert resumed.step == 6 and resumed.final_loss == straight.final_loss
    a, b = checkpoint_weights(tmp_path / "a" / "run"), checkpoint_weights(tmp_path / "b" / "run")
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    logged = [json.loads(line) for line in (tmp_path / "b" / "run" / "log.jsonl").read_text().splitlines()]
    reference = [json.loads(line) for line in (tmp_path / "a" / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5, 6]  # no lost or repeated step
    assert [r["loss"] for r in logged] == [r["loss"] for r in reference]


# ------------------------------------------------------------------------------------------------------ data
def test_samples_are_the_transform_of_their_row_with_position_seeded_masks(tmp_path):
    """Crop mode gives one sample per top-down person, whole mode one per image; each sample is the transform
    of its image with the generator of (seed, set, epoch, index), and its masking noise comes next from it."""
    from vitpose_plus.data import load_keypoint_dataset, top_down_index, top_down_instances
    from vitpose_plus.file_io import decode_image
    from vitpose_plus.modeling import get_dataset_spec
    from vitpose_plus.training.train import materialise_synthetic

    config = load_pretraining_config(write_config(tmp_path, runtime={"seed": 7}))
    materialise_synthetic(config, True, splits=("train",))
    data = build_pretraining_data(config, build_mae_config(config))
    coco_rows = load_keypoint_dataset(config.datasets[0].train.annotations, config.datasets[0].train.images, "coco")
    index = top_down_index(coco_rows)
    assert data.sizes == [len(index), 4] and len(index) > 4  # several persons per image
    transform = MAEPretrainingTransform(mode="crop", processor=pretraining_processor((64, 48), dataset=get_dataset_spec(
        "coco")))
    for i in (0, len(index) - 1):
        row = coco_rows[int(index[i][0])]
        box = next(x for x in top_down_instances(row) if x.index == int(index[i][1])).bbox
        rng = np.random.default_rng([7, 0, 2, i])
        expected = transform(decode_image(row["image"]), np.asarray(box), rng=rng)
        sample = data.dataset[2 * len(data.dataset) + i]  # epoch 2
        np.testing.assert_array_equal(sample["pixel_values"], expected)
        np.testing.assert_array_equal(sample["noise"], rng.random(12, dtype=np.float32))
    whole = data.parts[1]
    assert not whole.per_person and whole.transform.mode == "whole"
    again = data.parts[1].sample(3, epoch=5)
    np.testing.assert_array_equal(again["noise"], data.dataset[5 * len(data.dataset) + len(index) + 3]["noise"])


def test_image_folder_set_through_datasets_imagefolder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (80 + 10 * i, 60, 3), dtype=np.uint8) for i in range(3)]
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    path = write_config(tmp_path, datasets=[{"name": "photos", "image_folder": str(folder), "mode": "whole"}],
                        runtime={"output_dir": str(tmp_path / "run")})
    config = load_pretraining_config(path)
    data = build_pretraining_data(config, build_mae_config(config))
    assert data.sizes == [3]
    transform = MAEPretrainingTransform(image_size=(64, 48), mode="whole")
    by_height = {image.shape[0]: image for image in images}
    for i in range(3):
        sample = data.dataset[i]
        row = data.parts[0].rows[i]
        from vitpose_plus.file_io import decode_image

        decoded = decode_image(row["image"])
        np.testing.assert_array_equal(decoded, by_height[decoded.shape[0]])
        np.testing.assert_array_equal(sample["pixel_values"],
                                      transform(decoded, rng=np.random.default_rng([0, 0, 0, i])))


# ------------------------------------------------------------------------------------------------------ recipe
def test_optimizer_groups_learning_rate_rule_and_schedule(tmp_path):
    config = load_pretraining_config(write_config(tmp_path, optimization={
        "batch_size": 64, "gradient_accumulation_steps": 2, "max_steps": 100, "warmup_steps": 10}))
    assert config.optimization.betas == [0.9, 0.95] and config.optimization.weight_decay == 0.05
    assert pretraining_learning_rate(config, num_processes=1) == 2e-3  # given: used as is
    config.optimization.learning_rate = None
    assert pretraining_learning_rate(config, num_processes=2) == pytest.approx(1.5e-4 * 256 / 256)
    model = VitPosePlusForMaskedImageModeling(build_mae_config(config))
    optimizer = build_pretraining_optimizer(model, config, 1e-3)
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0 and decay["betas"] == (0.9, 0.95)
    names = {id(p): n for n, p in model.named_parameters()}
    # MAE's add_weight_decay: every tensor of 2+ dimensions decays (the mask token too), vectors (norms, biases) not.
    assert {names[id(p)] for p in decay["params"]} == {n for n, p in model.named_parameters()
                                                       if p.ndim > 1 and "position_embeddings" not in n}
    assert "decoder.mask_token" in {names[id(p)] for p in decay["params"]}
    assert all(p.ndim == 1 for p in no_decay["params"])
    optimised = {names[id(p)] for g in optimizer.param_groups for p in g["params"]}
    assert not any("position_embeddings" in n for n in optimised)
    assert optimised == {n for n, p in model.named_parameters() if "position_embeddings" not in n}
    schedule = pretraining_schedule(config, steps_per_epoch=7)
    assert schedule.lr_factor(0) == 0.0  # MAE's warmup starts at 0
    assert schedule.lr_factor(5) == pytest.approx(0.5 * 0.5 * (1 + math.cos(math.pi * 0.05)))
    assert schedule.lr_factor(50) == pytest.approx(0.5) and schedule.lr_factor(100) == pytest.approx(0.0)
    config.optimization.max_epochs, config.optimization.warmup_epochs = 4, 1
    epochs = pretraining_schedule(config, steps_per_epoch=7)
    assert (epochs.max_steps, epochs.warmup_steps) == (28, 7)


def test_pretraining_config_validation_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key 'base_learning_rat' \(did you mean 'base_learning_rate'\?\)"):
        load_pretraining_config(write_config(tmp_path, optimization={"base_learning_rat": 1.0}))
    with pytest.raises(ValueError, match=r"unknown key 'picture_evry' \(did you mean 'picture_every'\?\)"):
        load_pretraining_config(write_config(tmp_path, runtime={"picture_evry": 5}))
    with pytest.raises(FileNotFoundError,
                       match=r"datasets\[0\] \('coco'\)\.train\.annotations = .*missing\.json' does not exist"):
        load_pretraining_config(write_config(tmp_path, datasets=[
            {"name": "coco", "train": {"annotations": "missing.json", "images": "."}}]))
    with pytest.raises(FileNotFoundError, match=r"datasets\[0\] \('photos'\)\.image_folder = .*nope' is not a folder"):
        load_pretraining_config(write_config(tmp_path, datasets=[{"name": "photos", "image_folder": "nope"}]))
    with pytest.raises(ValueError, match=r"needs exactly one of 'train' .*, 'synthetic' or 'image_folder', got none"):
        load_pretraining_config(write_config(tmp_path, datasets=[{"name": "coco"}]))
    with pytest.raises(ValueError, match=r"datasets\[0\] \('coco'\)\.mode = 'person': expected one of"):
        load_pretraining_config(write_config(tmp_path, datasets=[
            {"name": "coco", "mode": "person", "synthetic": {"train_images": 2}}]))
    with pytest.raises(ValueError, match=r"model.overrides has an unknown field 'mask_ration' \(did you mean "
                                         r"'mask_ratio'\?\)"):
        load_pretraining_config(write_config(tmp_path, model={"overrides": {**TINY_MAE, "mask_ration": 0.5}}))
    with pytest.raises(ValueError, match=r"does not make a valid MAE model: .*mask_ratio"):
        load_pretraining_config(write_config(tmp_path, model={"overrides": {**TINY_MAE, "mask_ratio": 1.0}}))
    with pytest.raises(ValueError, match=r"does not make a valid MAE model: .*num_experts"):
        load_pretraining_config(write_config(tmp_path, model={"overrides": {**TINY_MAE, "num_experts": 2}}))
    with pytest.raises(ValueError, match=r"optimization.betas = \[0.9, 1.5\]: expected two numbers in \[0, 1\)"):
        load_pretraining_config(write_config(tmp_path, optimization={"betas": [0.9, 1.5]}))
    with pytest.raises(ValueError, match=r"data.scale = \[0.5, 0.2\]: expected \[min, max\]"):
        load_pretraining_config(write_config(tmp_path, data={"scale": [0.5, 0.2]}))
    with pytest.raises(ValueError, match=r"optimization.learning_rate = 'fast' \(str\): expected a number"):
        load_pretraining_config(write_config(tmp_path, optimization={"learning_rate": "fast"}))
    with pytest.raises(FileNotFoundError, match=r"No such pre-training config .*nope.yaml.*synthetic_mae"):
        load_pretraining_config(tmp_path / "nope.yaml")
    default = load_pretraining_config(None)  # the bundled synthetic config parses and validates
    assert [d.name for d in default.datasets] == ["coco", "ap10k", "synthetic_hand"]
    assert build_mae_config(default).hidden_size == 128


def test_shipped_pretraining_recipe_parses_and_names_the_missing_files():
    from vitpose_plus.training.pretraining_config import bundled_pretraining_configs

    assert set(bundled_pretraining_configs()) == {"synthetic_mae", "mae_base_coco_aic_person_crops"}
    with pytest.raises(FileNotFoundError, match=r"datasets\[0\] \('coco'\)\.train\.annotations = '/path/to/.*' "
                                                r"does not exist"):
        load_pretraining_config("mae_base_coco_aic_person_crops")
