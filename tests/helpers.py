"""The one helpers module of the test suite: tiny random-weight models, synthetic original/MAE checkpoints in the
documented layouts (VITPOSE_REFERENCE.md 2.1, 2.7), and fixture writers. Nothing here touches the network."""

from __future__ import annotations

import torch

from vitpose_plus import VitPosePlusConfig, VitPosePlusForPoseEstimation

PLUS_KEYPOINTS = (17, 14, 16, 17, 17, 133)


# ---------------------------------------------------------------------------------------------------------- models
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": (64, 48),
    "deconv_channels": (16, 16),
}


def tiny_config(**overrides) -> VitPosePlusConfig:
    """A 2-block, width-32 model on 64x48 crops (grid 4x3, heatmaps 16x12)."""
    kwargs = {**TINY, **overrides}
    return VitPosePlusConfig(**kwargs)


def tiny_plus_config(**overrides) -> VitPosePlusConfig:
    """Tiny ViTPose+: three datasets with different keypoint counts (17, 14, 16), one expert each."""
    kwargs = {"num_experts": 3, "part_features": 8, "datasets": ["coco", "aic", "mpii"], **overrides}
    return tiny_config(**kwargs)


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Give BatchNorm layers non-trivial running statistics and affine parameters (eval-mode parity tests)."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


def make_model(config: VitPosePlusConfig, seed: int = 0) -> VitPosePlusForPoseEstimation:
    torch.manual_seed(seed)
    model = VitPosePlusForPoseEstimation(config)
    # Trained weights are far from the init: perturb everything so that parity tests see non-trivial values
    # (the head init std 0.001 and zero biases would hide mistakes).
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    randomize_batchnorm(model, seed)
    return model.eval()


# ---------------------------------------------------------------------------------------------------------- checkpoints
def _head(state: dict, prefix: str, dim: int, k: int, decoder: str, gen: torch.Generator, channels: int = 256) -> None:
    def rnd(*shape, std=0.05):
        return torch.randn(*shape, generator=gen) * std

    if decoder == "classic":
        for index, (cin, cout) in ((0, (dim, channels)), (3, (channels, channels))):
            state[f"{prefix}.deconv_layers.{index}.weight"] = rnd(cin, cout, 4, 4, std=(4 * cin) ** -0.5)
            bn = f"{prefix}.deconv_layers.{index + 1}"
            state[f"{bn}.weight"] = 1 + rnd(cout, std=0.1)
            state[f"{bn}.bias"] = rnd(cout, std=0.1)
            state[f"{bn}.running_mean"] = rnd(cout, std=0.1)
            state[f"{bn}.running_var"] = 0.5 + torch.rand(cout, generator=gen)
            state[f"{bn}.num_batches_tracked"] = torch.tensor(1234)
        state[f"{prefix}.final_layer.weight"] = rnd(k, channels, 1, 1, std=channels**-0.5)
    else:
        state[f"{prefix}.final_layer.weight"] = rnd(k, dim, 3, 3, std=(9 * dim) ** -0.5)
    state[f"{prefix}.final_layer.bias"] = rnd(k, std=0.1)


def make_original_state(
    dim: int = 48,
    depth: int = 2,
    experts: int = 0,
    part_features: int = 0,
    keypoints: tuple[int, ...] = (17,),
    decoder: str = "classic",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """An original-layout state dict (`backbone.*`, `keypoint_head.*`, `associate_keypoint_heads.{j}.*`)."""
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, std=0.1):
        return torch.randn(*shape, generator=gen) * std

    hidden = 4 * dim
    state = {
        "backbone.pos_embed": rnd(1, 193, dim, std=0.5),  # slot 0 non-zero, as in trained weights
        "backbone.patch_embed.proj.weight": rnd(dim, 3, 16, 16, std=(3 * 256) ** -0.5),
        "backbone.patch_embed.proj.bias": rnd(dim),
        "backbone.last_norm.weight": 1 + rnd(dim),
        "backbone.last_norm.bias": rnd(dim),
    }
    for i in range(depth):
        p = f"backbone.blocks.{i}"
        for norm in ("norm1", "norm2"):
            state[f"{p}.{norm}.weight"] = 1 + rnd(dim)
            state[f"{p}.{norm}.bias"] = rnd(dim)
        state[f"{p}.attn.qkv.weight"] = rnd(3 * dim, dim, std=2 * dim**-0.5)
        state[f"{p}.attn.qkv.bias"] = rnd(3 * dim)
        state[f"{p}.attn.proj.weight"] = rnd(dim, dim, std=dim**-0.5)
        state[f"{p}.attn.proj.bias"] = rnd(dim)
        state[f"{p}.mlp.fc1.weight"] = rnd(hidden, dim, std=dim**-0.5)
        state[f"{p}.mlp.fc1.bias"] = rnd(hidden)
        shared = dim - part_features if experts else dim
        state[f"{p}.mlp.fc2.weight"] = rnd(shared, hidden, std=hidden**-0.5)
        state[f"{p}.mlp.fc2.bias"] = rnd(shared)
        for e in range(experts):
            state[f"{p}.mlp.experts.{e}.weight"] = rnd(part_features, hidden, std=hidden**-0.5)
            state[f"{p}.mlp.experts.{e}.bias"] = rnd(part_features)
    for j, k in enumerate(keypoints):
        _head(state, "keypoint_head" if j == 0 else f"associate_keypoint_heads.{j - 1}", dim, k, decoder, gen)
    return state


def model_split(state: dict[str, torch.Tensor], out: str) -> dict[str, torch.Tensor]:
    """The original tools/model_split.py, bugs included (experts kept; coco.pth keeps every associate head)."""
    names = ["coco", "aic", "mpii", "ap10k", "apt36k", "wholebody"]
    index = names.index(out)
    new = dict(state)
    for key in list(new):
        if key.endswith("mlp.fc2.weight") or key.endswith("mlp.fc2.bias"):
            param = key.rsplit(".", 1)[1]
            expert = key.replace(f"fc2.{param}", f"experts.{index}.{param}")
            new[key] = torch.cat([state[key], state[expert]], dim=0)
    if index > 0:
        prefix = f"associate_keypoint_heads.{index - 1}."
        for key in list(new):
            if key.startswith(prefix):
                new["keypoint_head." + key[len(prefix) :]] = state[key]
        for key in list(new):
            if key.startswith("associate_keypoint_heads."):
                new.pop(key)
    return new


def save_pth(state: dict, path, wrap: str | None = "state_dict") -> str:
    obj = {wrap: state, "meta": {"epoch": 210}} if wrap else state
    torch.save(obj, path)
    return str(path)


def make_mae_state(dim: int = 48, depth: int = 1, patch: int = 16, grid: int = 14, seed: int = 4) -> dict:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    state = {
        "cls_token": rnd(1, 1, dim),
        "pos_embed": rnd(1, 1 + grid * grid, dim),
        "patch_embed.proj.weight": rnd(dim, 3, patch, patch),
        "patch_embed.proj.bias": rnd(dim),
        "norm.weight": rnd(dim),
        "norm.bias": rnd(dim),
        "mask_token": rnd(1, 1, dim),
        "decoder_embed.weight": rnd(32, dim),
        "decoder_pos_embed": rnd(1, 1 + grid * grid, 32),
        "decoder_blocks.0.norm1.weight": rnd(32),
    }
    for i in range(depth):
        p = f"blocks.{i}"
        for name, shape in [
            ("norm1.weight", (dim,)), ("norm1.bias", (dim,)), ("norm2.weight", (dim,)), ("norm2.bias", (dim,)),
            ("attn.qkv.weight", (3 * dim, dim)), ("attn.qkv.bias", (3 * dim,)),
            ("attn.proj.weight", (dim, dim)), ("attn.proj.bias", (dim,)),
            ("mlp.fc1.weight", (4 * dim, dim)), ("mlp.fc1.bias", (4 * dim,)),
            ("mlp.fc2.weight", (dim, 4 * dim)), ("mlp.fc2.bias", (dim,)),
        ]:  # fmt: skip
            state[f"{p}.{name}"] = rnd(*shape)
    return state


TINY_PLUS = {"hidden_size": 48, "num_hidden_layers": 1, "part_features": 12}
