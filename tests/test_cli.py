"""The `vitpose-plus` command line: the `convert` group end to end on tiny synthetic checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest
import torch
from helpers import make_mae_state, make_original_state, model_split, save_pth

from vitpose_plus import cli
from vitpose_plus.modeling import VitPosePlusForPoseEstimation

TINY = ["--num-attention-heads", "12"]


@pytest.fixture(scope="module")
def plus_checkpoint(tmp_path_factory):
    """A tiny ViTPose+ original checkpoint (D=48, pf=12, six heads) and its converted folder."""
    root = tmp_path_factory.mktemp("plus")
    state = make_original_state(dim=48, depth=1, experts=6, part_features=12, keypoints=(17, 14, 16, 17, 17, 133))
    path = save_pth(state, root / "vitpose+_tiny.pth")
    out = root / "converted"
    assert cli.main(["convert", "original", "--checkpoint", path, "--output", str(out), "--verify", *TINY]) == 0
    return state, path, out


def test_help_lists_the_convert_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["convert", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for command in ("original", "split", "to-transformers", "from-transformers", "mae"):
        assert command in text


def test_convert_original_writes_a_hub_folder(tmp_path, capsys):
    state = make_original_state(depth=1)
    path = save_pth(state, tmp_path / "vitpose-b.pth")
    out = tmp_path / "out"
    code = cli.main(
        [
            "convert",
            "original",
            "--checkpoint",
            path,
            "--output",
            str(out),
            "--verify",
            "--max-shard-size",
            "2MB",
            *TINY,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "verified against the reference forward" in printed and "num_batches_tracked" in printed
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors.index.json", "README.md", "conversion_report.json"} <= files
    assert "preprocessor_config.json" in files
    assert json.loads((out / "preprocessor_config.json").read_text())["size"] == {"height": 256, "width": 192}
    assert len([f for f in files if f.endswith(".safetensors")]) > 1  # sharded
    config = json.loads((out / "config.json").read_text())
    assert config["auto_map"]["AutoConfig"] == "configuration_vitpose_plus.VitPosePlusConfig"
    assert config["datasets"][0]["name"] == "coco" and len(config["datasets"][0]["flip_pairs"]) == 8
    report = json.loads((out / "conversion_report.json").read_text())
    assert len(report["mapped"]) + len(report["ignored"]) == len(state)
    model = VitPosePlusForPoseEstimation.from_pretrained(out)
    assert torch.equal(model.state_dict()["backbone.embeddings.position_embeddings"], state["backbone.pos_embed"])


def test_convert_original_failures_name_the_key(tmp_path, capsys):
    state = make_original_state(depth=1)
    state["keypoint_head.unexpected.weight"] = torch.zeros(3)
    path = save_pth(state, tmp_path / "extra.pth")
    assert cli.main(["convert", "original", "--checkpoint", path, "--output", str(tmp_path / "o"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "keypoint_head.unexpected.weight" in err and "unknown key" in err
    assert not (tmp_path / "o").exists()

    clean = save_pth(make_original_state(depth=1), tmp_path / "clean.pth")
    assert cli.main(["convert", "original", "--checkpoint", clean, "--output", str(tmp_path / "o")]) == 1
    assert "--num-attention-heads" in capsys.readouterr().err


def test_split_and_transformers_round_trip(plus_checkpoint, tmp_path):
    state, path, converted = plus_checkpoint
    plus = VitPosePlusForPoseEstimation.from_pretrained(converted).eval()
    assert plus.config.num_datasets == 6

    assert (
        cli.main(["convert", "split", "--model", str(converted), "--dataset", "aic", "--output", str(tmp_path / "aic")])
        == 0
    )
    split = VitPosePlusForPoseEstimation.from_pretrained(tmp_path / "aic")
    # the same as converting the original model_split.py output
    leftover = save_pth(model_split(state, "aic"), tmp_path / "aic.pth")
    assert (
        cli.main(
            ["convert", "original", "--checkpoint", leftover, "--output", str(tmp_path / "aic2"), "--verify", *TINY]
        )
        == 0
    )
    split2 = VitPosePlusForPoseEstimation.from_pretrained(tmp_path / "aic2")
    for key, value in split.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, split2.state_dict()[key]), key

    hf_dir, back_dir = tmp_path / "hf", tmp_path / "back"
    assert (
        cli.main(["convert", "to-transformers", "--model", str(converted), "--output", str(hf_dir)]) == 1
    )  # no --dataset
    assert cli.main(["convert", "to-transformers", "--model", str(tmp_path / "aic"), "--output", str(hf_dir)]) == 0
    assert cli.main(["convert", "from-transformers", "--model", str(hf_dir), "--output", str(back_dir)]) == 0
    back = VitPosePlusForPoseEstimation.from_pretrained(back_dir)
    for key, value in back.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(value, split.state_dict()[key]), key


def test_convert_mae(tmp_path):
    mae = make_mae_state(dim=48, depth=2)
    path = save_pth(mae, tmp_path / "mae_pretrain_vit_small.pth", wrap="model")
    out = tmp_path / "mae"
    args = ["convert", "mae", "--checkpoint", path, "--preset", "vitpose-plus-small", "--output", str(out)]
    tiny = ["--set", "hidden_size=48", "--set", "part_features=12"]
    # a preset of another depth is refused, naming what is missing
    assert cli.main([*args, *tiny]) == 1
    assert cli.main([*args, *tiny, "--set", "num_hidden_layers=2", "--set", "image_size=[384,288]"]) == 0
    model = VitPosePlusForPoseEstimation.from_pretrained(out)
    ours = model.state_dict()
    assert ours["backbone.embeddings.position_embeddings"].shape == (1, 24 * 18 + 1, 48)
    assert torch.equal(ours["backbone.layers.1.mlp.experts.3.weight"], mae["blocks.1.mlp.fc2.weight"][36:])
    report = json.loads((out / "conversion_report.json").read_text())
    assert "decoder_embed.weight" in report["ignored"] and "cls_token" in report["ignored"]
    assert (out / "README.md").read_text().count("do not use for inference") == 1


def test_command_modules_can_register_groups(monkeypatch, capsys):
    module = types.ModuleType("fake_vitpose_commands")

    def register(subparsers):
        parser = subparsers.add_parser("hello")
        parser.add_argument("--name", default="world")
        parser.set_defaults(func=lambda args: print(f"hello {args.name}") or 0)

    module.register = register
    monkeypatch.setitem(sys.modules, "fake_vitpose_commands", module)
    monkeypatch.setattr(cli, "COMMAND_MODULES", [*cli.COMMAND_MODULES, "fake_vitpose_commands"])
    assert cli.main(["hello", "--name", "pose"]) == 0
    assert "hello pose" in capsys.readouterr().out


def test_python_m_vitpose_plus_is_the_command():
    # One entry point: `python -m vitpose_plus` (what `accelerate launch -m vitpose_plus` and torchrun run).
    done = subprocess.run([sys.executable, "-m", "vitpose_plus", "convert", "original", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--checkpoint" in done.stdout and "--verify" in done.stdout and "5GB)" in done.stdout
