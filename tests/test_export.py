"""ONNX export: the merged dense model, dynamic batch, onnxruntime parity with PyTorch."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from helpers import make_model, tiny_config, tiny_plus_config

from vitpose_plus.cli import main
from vitpose_plus.conversion.export_onnx import HeatmapExportModule, export_onnx


@pytest.fixture(scope="module")
def plus_model():
    return make_model(tiny_plus_config())


def _run(path, x: torch.Tensor) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]  # no dataset_index input
    assert session.get_inputs()[0].shape[0] == "batch"
    return torch.from_numpy(session.run(["heatmaps"], {"pixel_values": x.numpy()})[0])


@pytest.mark.parametrize(("dataset", "k"), [("coco", 17), ("aic", 14)])
def test_onnx_parity_with_the_plus_model(plus_model, tmp_path, dataset, k):
    result = export_onnx(plus_model, tmp_path / "m.onnx", dataset=dataset)
    assert result.dataset == dataset and result.num_keypoints == k and result.opset == 17
    assert set(result.max_abs_difference) == {"heatmaps, batch 2", "heatmaps, batch 3", "keypoints (px)"}
    assert max(v for key, v in result.max_abs_difference.items() if key.startswith("heatmaps")) <= 1e-4
    # keypoints through the shared TopDownPredictor: DARK's Newton step amplifies 1e-7 on these flat random heatmaps
    assert result.max_abs_difference["keypoints (px)"] <= 1e-2
    x = torch.randn(5, 3, 64, 48, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():  # the full MoE model on this dataset, K channels
        expected = plus_model(x, dataset_index=dataset).heatmaps[:, :k]
    got = _run(tmp_path / "m.onnx", x)
    assert got.shape == (5, k, 16, 12)
    assert (got - expected).abs().max() <= 1e-4


def test_onnx_flip_test_graph(plus_model, tmp_path):
    export_onnx(plus_model, tmp_path / "flip.onnx", dataset="aic", flip_test=True)  # non-UDP: shifted flip back
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        expected = plus_model(x, dataset_index="aic", flip_test=True).heatmaps[:, :14]
    assert (_run(tmp_path / "flip.onnx", x) - expected).abs().max() <= 1e-4


def test_export_cli_prints_difference(tmp_path, capsys):
    folder = tmp_path / "model"
    make_model(tiny_config(decoder_type="simple")).save_pretrained(folder)
    out = tmp_path / "dense.onnx"
    assert main(["export", "onnx", "--model", str(folder), "--output", str(out)]) == 0  # single dataset: no --dataset
    text = capsys.readouterr().out
    assert "onnxruntime vs PyTorch max abs difference: heatmaps, batch 2:" in text and "keypoints (px):" in text
    assert out.is_file()
    assert main(["export", "onnx", "--model", str(folder), "--output", str(out)]) == 1  # never overwritten silently
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["export", "onnx", "--model", str(folder), "--output", str(out), "--overwrite"]) == 0


def test_export_errors(plus_model, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"datasets \['coco', 'aic', 'mpii'\]; choose one"):
        export_onnx(plus_model, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="Unknown dataset 'ap10k'"):
        export_onnx(plus_model, tmp_path / "m2.onnx", dataset="ap10k")
    with pytest.raises(ValueError, match="opset must be >= 17"):
        export_onnx(plus_model, tmp_path / "m3.onnx", dataset="coco", opset=13)
    with pytest.raises(ValueError, match="merge it first"):
        HeatmapExportModule(plus_model)
    folder = tmp_path / "model"
    plus_model.save_pretrained(folder)
    assert main(["export", "onnx", "--model", str(folder), "--dataset", "ap10k", "--output", str(tmp_path / "x")]) == 1
    assert "Unknown dataset 'ap10k'" in capsys.readouterr().err
