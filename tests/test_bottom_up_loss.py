"""The bottom-up loss against a direct transcription of the original mmpose 0.x `HeatmapLoss`, `AELoss` and
`MultiLossFactory` (+ `AESimpleHead.get_loss`) on random tensors."""

from __future__ import annotations

import pytest
import torch

from vitpose_plus.modeling import VitPosePlusBottomUpConfig, VitPosePlusForBottomUpPoseEstimation
from vitpose_plus.modeling.modeling_vitpose_plus_bottom_up import associative_embedding_loss, masked_heatmap_loss


# ----------------------------------------------------------------------------------------------------------- original
def _original_heatmap_loss(pred, gt, mask):
    loss = ((pred - gt) ** 2) * mask[:, None, :, :].expand_as(pred)
    return loss.mean(dim=3).mean(dim=2).mean(dim=1)


def _original_single_tag_loss(pred_tag, joints, loss_type):
    """`AELoss.singleTagLoss`: pred_tag (K*H*W, 1), joints (M, K, 2) numpy."""
    tags = []
    pull = 0
    for joints_per_person in joints:
        tmp = []
        for joint in joints_per_person:
            if joint[1] > 0:
                tmp.append(pred_tag[joint[0]])
        if len(tmp) == 0:
            continue
        tmp = torch.stack(tmp)
        tags.append(torch.mean(tmp, dim=0))
        pull = pull + torch.mean((tmp - tags[-1].expand_as(tmp)) ** 2)
    num_tags = len(tags)
    if num_tags == 0:
        return torch.zeros(1).sum(), torch.zeros(1).sum()
    if num_tags == 1:
        return torch.zeros(1).sum(), pull
    tags = torch.stack(tags)
    a = tags.expand(num_tags, num_tags)
    diff = a - a.permute(1, 0)
    if loss_type == "exp":
        push = torch.sum(torch.exp(-torch.pow(diff, 2))) - num_tags
    else:
        push = torch.clamp(1 - torch.abs(diff), min=0).sum() - num_tags
    return push / ((num_tags - 1) * num_tags) * 0.5, pull / num_tags


def _original_ae_loss(tags, joints, loss_type):
    """`AELoss.forward` with `tags` (N, K*H*W, 1)."""
    pushes, pulls = [], []
    joints = joints.cpu().numpy()
    for i in range(tags.size(0)):
        push, pull = _original_single_tag_loss(tags[i], joints[i], loss_type)
        pushes.append(push)
        pulls.append(pull)
    return torch.stack(pushes), torch.stack(pulls)


def _random_joints(generator, batch, people, k, h, w):
    """Encoded joints as `JointsEncoder` writes them: visible joints packed in order; some persons and images
    empty, some with a single person."""
    joints = torch.zeros(batch, people, k, 2, dtype=torch.long)
    for b in range(batch):
        count = [0, 1, 3, people][b % 4]
        for p in range(count):
            visible = torch.randperm(k, generator=generator)[: int(torch.randint(0, k + 1, (1,), generator=generator))]
            for slot, kp in enumerate(sorted(visible.tolist())):
                y, x = torch.randint(0, h, (1,), generator=generator), torch.randint(0, w, (1,), generator=generator)
                joints[b, p, slot] = torch.tensor([kp * h * w + int(y) * w + int(x), 1])
    return joints


# ----------------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("loss_type", ["exp", "max"])
def test_ae_loss_equals_the_original(loss_type):
    gen = torch.Generator().manual_seed(0)
    batch, people, k, h, w = 8, 5, 4, 6, 7
    tags = torch.randn(batch, k, h, w, generator=gen)
    joints = _random_joints(gen, batch, people, k, h, w)
    push, pull = associative_embedding_loss(tags, joints, loss_type)
    ref_push, ref_pull = _original_ae_loss(tags.reshape(batch, -1, 1), joints, loss_type)
    torch.testing.assert_close(push, ref_push.reshape(-1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pull, ref_pull.reshape(-1), atol=1e-6, rtol=1e-5)
    assert push[0] == 0 and pull[0] == 0 and push[1] == 0  # no person; one person: no push
    assert (push[2:] != 0).any() and (pull != 0).any()


def test_ae_loss_gradients_equal_the_original():
    gen = torch.Generator().manual_seed(1)
    tags = torch.randn(4, 3, 5, 5, generator=gen)
    joints = _random_joints(gen, 4, 4, 3, 5, 5)
    ours, ref = tags.clone().requires_grad_(), tags.clone().requires_grad_()
    push, pull = associative_embedding_loss(ours, joints)
    (push.sum() + 2 * pull.sum()).backward()
    ref_push, ref_pull = _original_ae_loss(ref.reshape(4, -1, 1), joints, "exp")
    (ref_push.sum() + 2 * ref_pull.sum()).backward()
    torch.testing.assert_close(ours.grad, ref.grad, atol=1e-6, rtol=1e-5)


def test_heatmap_loss_equals_the_original():
    gen = torch.Generator().manual_seed(2)
    pred, gt = torch.randn(3, 4, 8, 9, generator=gen), torch.rand(3, 4, 8, 9, generator=gen)
    mask = (torch.rand(3, 8, 9, generator=gen) > 0.3).float()
    torch.testing.assert_close(masked_heatmap_loss(pred, gt, mask), _original_heatmap_loss(pred, gt, mask),
                               atol=1e-7, rtol=1e-6)


def _tiny_bottom_up(**overrides):
    config = VitPosePlusBottomUpConfig(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, image_size=(32, 32), deconv_channels=(8, 8),
        **overrides,
    )
    torch.manual_seed(0)
    return VitPosePlusForBottomUpPoseEstimation(config)


def test_model_loss_is_the_multi_loss_factory():
    """`MultiLossFactory` (factors 1.0, 0.001, 0.001) reduced by `AESimpleHead.get_loss` (mean over images)."""
    model = _tiny_bottom_up()
    gen = torch.Generator().manual_seed(3)
    batch, k, h, w = 4, 17, 8, 8
    heatmaps, tags = torch.randn(batch, k, h, w, generator=gen), torch.randn(batch, k, h, w, generator=gen)
    labels, mask = torch.rand(batch, k, h, w, generator=gen), (torch.rand(batch, h, w, generator=gen) > 0.2).float()
    joints = _random_joints(gen, batch, 30, k, h, w)
    index = torch.zeros(batch, dtype=torch.long)
    loss, hm, push, pull = model.compute_loss(heatmaps, tags, labels, mask, joints, index)
    ref_push, ref_pull = _original_ae_loss(tags.reshape(batch, -1, 1), joints, "exp")
    torch.testing.assert_close(hm, (_original_heatmap_loss(heatmaps, labels, mask) * 1.0).mean(dim=0))
    torch.testing.assert_close(push, (ref_push * 0.001).mean(dim=0), atol=1e-9, rtol=1e-5)
    torch.testing.assert_close(pull, (ref_pull * 0.001).mean(dim=0), atol=1e-9, rtol=1e-5)
    torch.testing.assert_close(loss, hm + push + pull)


def test_mixed_datasets_weight_each_head_by_its_share():
    """Each dataset's loss over its own images and keypoints, times n_d / B: the mean of the per-image losses."""
    model = _tiny_bottom_up(datasets=["coco", "aic"], num_experts=2, part_features=8, loss_weights=[1.0, 2.0])
    gen = torch.Generator().manual_seed(4)
    batch, h, w = 5, 8, 8
    index = torch.tensor([1, 0, 1, 1, 0])
    heatmaps, tags = torch.randn(batch, 17, h, w, generator=gen), torch.randn(batch, 17, h, w, generator=gen)
    labels, mask = torch.rand(batch, 17, h, w, generator=gen), torch.ones(batch, h, w)
    joints = _random_joints(gen, batch, 30, 14, h, w)  # the AIC layout: indices below 14 * h * w
    joints = torch.cat([joints, torch.zeros(batch, 30, 3, 2, dtype=torch.long)], dim=2)
    _, hm, push, pull = model.compute_loss(heatmaps, tags, labels, mask, joints, index)
    expected = torch.zeros(3)
    for i in range(batch):
        kd, weight = (14, 2.0) if index[i] == 1 else (17, 1.0)
        sl = slice(i, i + 1)
        ref_push, ref_pull = _original_ae_loss(tags[sl, :kd].reshape(1, -1, 1), joints[sl], "exp")
        expected += weight / batch * torch.stack(
            [_original_heatmap_loss(heatmaps[sl, :kd], labels[sl, :kd], mask[sl])[0], 0.001 * ref_push[0],
             0.001 * ref_pull[0]]
        )
    torch.testing.assert_close(torch.stack([hm, push, pull]), expected, atol=1e-8, rtol=1e-5)


def test_loss_errors_name_the_problem():
    model = _tiny_bottom_up()
    x = torch.zeros(2, 17, 8, 8)
    index = torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="label_joints .* is required"):
        model.compute_loss(x, x, x, None, None, index)
    with pytest.raises(ValueError, match="must hold integers"):
        model.compute_loss(x, x, x, None, torch.zeros(2, 30, 17, 2), index)
    bad = torch.zeros(2, 30, 17, 2, dtype=torch.long)
    bad[0, 0, 0] = torch.tensor([17 * 64, 1])
    with pytest.raises(ValueError, match="outside the"):
        model.compute_loss(x, x, x, None, bad, index)
    with pytest.raises(ValueError, match="label_mask must have shape"):
        model.compute_loss(x, x, x, torch.ones(2, 4, 4), bad * 0, index)
