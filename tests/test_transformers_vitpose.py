"""transformers' VitPose interop (conversion/transformers_vitpose.py): both directions, dense and ViTPose+."""

from __future__ import annotations

import pytest
import torch
from helpers import make_model, tiny_config, tiny_plus_config

from vitpose_plus.conversion.transformers_vitpose import from_transformers_vitpose, to_transformers_vitpose


# ----------------------------------------------------------------------------------------------------------- interop
def _hf_heatmaps(hf_model, x, index=None):
    with torch.no_grad():
        if index is None:
            return hf_model(x).heatmaps
        return hf_model(x, dataset_index=index).heatmaps


@pytest.mark.parametrize("decoder_type", ["classic", "simple"])
def test_transformers_interop_dense(decoder_type, pixel_values):
    model = make_model(tiny_config(decoder_type=decoder_type, deconv_channels=(256, 256), layer_norm_eps=1e-12))
    hf_model = to_transformers_vitpose(model).eval()
    assert type(hf_model).__name__ == "VitPoseForPoseEstimation"
    assert hf_model.config.backbone_config.layer_norm_eps == 1e-12
    with torch.no_grad():
        ours = model(pixel_values).heatmaps
    assert (_hf_heatmaps(hf_model, pixel_values) - ours).abs().max() <= 1e-5
    back = from_transformers_vitpose(hf_model).eval()
    assert back.config.layer_norm_eps == 1e-12 and back.config.decoder_type == decoder_type
    for name, tensor in model.state_dict().items():
        assert torch.equal(back.state_dict()[name], tensor), name
    with torch.no_grad():
        assert torch.equal(back(pixel_values).heatmaps, ours)


def test_transformers_interop_plus_every_dataset(pixel_values, tmp_path):
    model = make_model(tiny_plus_config(deconv_channels=(256, 256)))
    with pytest.raises(ValueError, match="pass dataset="):
        to_transformers_vitpose(model)
    for dataset in model.config.dataset_names:
        hf_model = to_transformers_vitpose(model, dataset).eval()
        with torch.no_grad():
            ours = model(pixel_values, dataset_index=dataset).heatmaps
        k = model.config.dataset_spec(dataset).num_keypoints
        assert (_hf_heatmaps(hf_model, pixel_values)[:, :k] - ours[:, :k]).abs().max() <= 1e-5
    # A transformers ViTPose+ checkpoint (all experts, the COCO head) keeps its experts here.
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    hf_config = VitPoseConfig(
        backbone_config=VitPoseBackboneConfig(
            image_size=[64, 48], hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_experts=3,
            part_features=8, out_indices=[2],
        ),
        use_simple_decoder=False,
        num_labels=17,
    )
    torch.manual_seed(3)
    hf_plus = VitPoseForPoseEstimation(hf_config).eval()
    hf_plus.save_pretrained(tmp_path / "hf")
    ours = from_transformers_vitpose(tmp_path / "hf").eval()
    assert ours.config.num_experts == 3 and ours.config.dataset_names == ["coco"]
    for e in range(3):
        ours.config.datasets[0]["expert_index"] = e  # route COCO through each expert in turn
        with torch.no_grad():
            mine = ours(pixel_values).heatmaps
        theirs = _hf_heatmaps(hf_plus, pixel_values, torch.full((6,), e))
        assert (mine - theirs).abs().max() <= 1e-5
    ours.config.datasets[0]["expert_index"] = 0
    round_trip = to_transformers_vitpose(ours)
    for name, tensor in hf_plus.state_dict().items():
        assert torch.equal(round_trip.state_dict()[name], tensor), name


def test_from_transformers_refuses_intermediate_layer_head():
    from transformers import VitPoseBackboneConfig, VitPoseConfig, VitPoseForPoseEstimation

    hf_config = VitPoseConfig(
        backbone_config=VitPoseBackboneConfig(
            image_size=[64, 48], hidden_size=32, num_hidden_layers=2, num_attention_heads=4, out_indices=[1]
        ),
    )
    with pytest.raises(ValueError, match=r"layer 1 \(out_indices=\[1\]\)"):
        from_transformers_vitpose(VitPoseForPoseEstimation(hf_config))




# ------------------------------------------------------------------------------------------------------- drop-in
TRANSFORMERS_DOCS_EXAMPLE = """
inputs = image_processor(image, boxes=[person_boxes], return_tensors="pt")
with torch.no_grad():
    outputs = model(**inputs)
pose_results = image_processor.post_process_pose_estimation(outputs, boxes=[person_boxes], threshold=0.3)
image_pose_result = pose_results[0]
named = []
for person_pose in image_pose_result:
    for keypoint, label, score in zip(person_pose["keypoints"], person_pose["labels"], person_pose["scores"]):
        keypoint_name = model.config.id2label[label.item()]
        x, y = keypoint
        named.append((keypoint_name, float(x), float(y), float(score)))
"""


def test_transformers_vitpose_usage_runs_unchanged():
    """The usage code of transformers' VitPose docs (processor, model(**inputs), post-processing, id2label) runs as
    is on our model and returns what transformers' VitPose returns for the same weights: keypoint names, keypoints
    and scores, and the same result keys with corner boxes."""
    import numpy as np
    from transformers import VitPoseImageProcessorPil

    from vitpose_plus.modeling import VitPosePlusImageProcessor

    model = make_model(tiny_config(deconv_channels=(256, 256))).eval()
    hf_model = to_transformers_vitpose(model).eval()
    image = (np.random.default_rng(3).random((240, 320, 3)) * 255).astype(np.uint8)
    person_boxes = np.array([[20.0, 30.0, 90.0, 180.0], [150.0, 10.0, 120.0, 200.0]])
    results = {}
    size = dict(zip(("height", "width"), model.config.image_size))
    for name, (net, processor) in {
        "ours": (model, VitPosePlusImageProcessor.from_model_config(model.config)),
        "transformers": (hf_model, VitPoseImageProcessorPil(size=size)),
    }.items():
        scope = {"torch": torch, "image": image, "person_boxes": person_boxes, "model": net,
                 "image_processor": processor}
        exec(TRANSFORMERS_DOCS_EXAMPLE, scope)
        results[name] = scope
    ours, theirs = results["ours"], results["transformers"]
    assert [n for n, *_ in ours["named"]] == [n for n, *_ in theirs["named"]]
    assert ours["named"][0][0] == "nose" and 17 <= len(ours["named"]) <= 2 * 17  # threshold 0.3 drops some
    # Scores are the heatmap maxima of the same weights. Keypoint positions are not compared: transformers' DARK
    # blurs with sigma 0.8 where the original (and this repository, tested in test_keypoint_codecs) derives sigma from
    # the kernel size, which moves the refined maxima of these random-weight heatmaps.
    np.testing.assert_allclose([v[3] for v in ours["named"]], [v[3] for v in theirs["named"]], atol=1e-3)
    for mine, hf, (x, y, w, h) in zip(ours["image_pose_result"], theirs["image_pose_result"], person_boxes):
        assert set(hf) <= set(mine) and mine["keypoints"].shape == hf["keypoints"].shape
        assert torch.equal(mine["labels"], hf["labels"])
        # Corners with x2 = x + w - 1 (transformers' own bbox is [cx, cy, cx + sx - 1, cy + sy - 1], a known bug).
        torch.testing.assert_close(mine["bbox"].double(), torch.tensor([x, y, x + w - 1, y + h - 1]).double())
