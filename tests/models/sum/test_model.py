"""The SUM model: every variant's outputs, conditioning, VMamba checkpoints, learning."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from salience.data.conditions import Condition
from salience.io.images import load_image
from salience.models.losses import fixation_nll_bits
from salience.models.registry import create_model, list_models
from salience.models.sum import (
    VARIANTS,
    SumConfig,
    SumSaliency,
    cell_log_density,
    load_vmamba_checkpoint,
)

# A VMamba encoder small enough for milliseconds, with an MLP branch to cover its keys.
TINY = SumConfig(
    dims=(8, 16, 32, 64),
    depths=(1, 2, 1, 1),
    decoder_depths=(1, 1, 1, 1),
    d_state=4,
    token_dim=8,
    image_size=(64, 64),
)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_predicts_a_density(name):
    assert name in list_models()
    torch.manual_seed(0)
    model = create_model(name, encoder_pretrained=False).eval()
    images = torch.rand(2, 3, 32, 64)
    with torch.no_grad():
        out = model(images, torch.tensor([Condition.MOUSE_NATURAL, Condition.USER_INTERFACE]))
    assert out["log_density"].shape == (2, 8, 16) == (2, *model.output_size((32, 64)))
    assert out["saliency"].shape == (2, 1, 32, 64)
    torch.testing.assert_close(out["log_density"].exp().sum((1, 2)), torch.ones(2))
    encoder = sum(p.numel() for p in model.encoder.parameters())
    model.encoder.requires_grad_(False)
    assert model.num_parameters(trainable_only=True) == model.num_parameters() - encoder > 0


def test_the_density_is_the_softmax_of_the_logits_summed_over_cells():
    saliency = torch.randn(2, 1, 8, 12, dtype=torch.float64)
    want = torch.softmax(saliency.flatten(1), 1).view(2, 2, 4, 3, 4).sum((2, 4))  # (2, 2, 3)
    torch.testing.assert_close(cell_log_density(saliency).exp(), want)


def test_gradients_reach_every_parameter_and_only_the_used_tokens():
    torch.manual_seed(0)
    model = SumSaliency(TINY)
    out = model(torch.rand(2, 3, 64, 64), torch.tensor([Condition.EYE_NATURAL, 2]))
    fixation_nll_bits(out["log_density"], [torch.rand(5, 2), torch.rand(3, 2)]).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if name.endswith("tokens.weight"):  # (4, token_dim): rows of the conditions used
            assert (param.grad[[1, 2]].abs().sum(1) > 0).all(), name
            assert (param.grad[[0, 3]] == 0).all(), name
        else:
            assert param.grad.abs().sum() > 0, name


def test_the_condition_changes_the_prediction():
    torch.manual_seed(0)
    model = SumSaliency(TINY).double().eval()  # float64: the fresh model's small effects stand out
    images = torch.rand(2, 3, 64, 64, dtype=torch.float64)
    with torch.no_grad():
        by_int = model(images, 2)["saliency"]
        by_tensor = model(images, torch.full((2,), 2))["saliency"]
        default = model(images)["saliency"]
        eye = model(images, Condition.EYE_NATURAL)["saliency"]
    torch.testing.assert_close(by_int, by_tensor, rtol=0, atol=0)
    torch.testing.assert_close(default, eye, rtol=0, atol=0)  # eye tracking on natural images
    assert (by_int - eye).abs().max() > 1e-8


def test_a_lite_encoder_runs_from_cached_backbone_features():
    torch.manual_seed(0)
    model = create_model("sum-lite0", encoder_pretrained=False, decoder_depths=(1, 1, 1, 1)).eval()
    images, condition = torch.rand(2, 3, 64, 32), torch.tensor([0, 2])
    with torch.no_grad():
        want = model(images, condition)
        maps = model.encoder.backbone(images)  # [(B, C, h, w)], what a feature cache stores
        got = model(condition=condition, features=maps, input_size=(64, 32))
    torch.testing.assert_close(got["log_density"], want["log_density"])
    with pytest.raises(ValueError, match="input_size"):
        model(condition=condition, features=maps)
    with pytest.raises(ValueError, match="Lite encoder"):
        SumSaliency(TINY)(features=maps, input_size=(64, 32))


def test_bad_inputs_are_refused():
    model = SumSaliency(TINY)
    images = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match=r"in \[0, 4\)"):
        model(images, 4)
    with pytest.raises(ValueError, match="integer tensor"):
        model(images, torch.tensor([0.0]))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.rand(1, 3, 48, 64))
    with pytest.raises(ValueError, match="encoder must be"):
        SumConfig(encoder="resnet")
    with pytest.raises(ValueError, match="encoder_checkpoint"):
        SumConfig(encoder_pretrained=True)  # no VMamba weights ship


# Official VMamba checkpoints ------------------------------------------------------------------


def official_state_dict(config: SumConfig, names: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors under the official VMamba names ("v0": the Feb. 2024 release and SUM's
    code; "v1": the current code), shaped from VMamba's formulas, classifier included."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def put(key: str, *shape: int) -> None:
        state[key] = torch.randn(*shape, generator=g)

    dims, n = config.dims, config.d_state
    embed = ("proj", "norm") if names == "v0" else ("0", "2")
    put(f"patch_embed.{embed[0]}.weight", dims[0], 3, 4, 4)
    put(f"patch_embed.{embed[0]}.bias", dims[0])
    put(f"patch_embed.{embed[1]}.weight", dims[0])
    put(f"patch_embed.{embed[1]}.bias", dims[0])
    for i, (dim, depth) in enumerate(zip(dims, config.depths, strict=True)):
        inner, rank = int(config.ssm_ratio * dim), math.ceil(dim / 16)
        for j in range(depth):
            block = f"layers.{i}.blocks.{j}"
            norm, op = ("ln_1", "self_attention") if names == "v0" else ("norm", "op")
            put(f"{block}.{norm}.weight", dim)
            put(f"{block}.{norm}.bias", dim)
            put(f"{block}.{op}.in_proj.weight", 2 * inner, dim)
            put(f"{block}.{op}.conv2d.weight", inner, 1, 3, 3)
            put(f"{block}.{op}.conv2d.bias", inner)
            put(f"{block}.{op}.x_proj_weight", 4, rank + 2 * n, inner)
            put(f"{block}.{op}.dt_projs_weight", 4, inner, rank)
            put(f"{block}.{op}.dt_projs_bias", 4, inner)
            put(f"{block}.{op}.A_logs", 4 * inner, n)
            put(f"{block}.{op}.Ds", 4 * inner)
            put(f"{block}.{op}.out_norm.weight", inner)
            put(f"{block}.{op}.out_norm.bias", inner)
            put(f"{block}.{op}.out_proj.weight", dim, inner)
            if config.mlp_ratio > 0:
                hidden = int(config.mlp_ratio * dim)
                put(f"{block}.norm2.weight", dim)
                put(f"{block}.norm2.bias", dim)
                put(f"{block}.mlp.fc1.weight", hidden, dim)
                put(f"{block}.mlp.fc1.bias", hidden)
                put(f"{block}.mlp.fc2.weight", dim, hidden)
                put(f"{block}.mlp.fc2.bias", dim)
        if i < len(dims) - 1:
            put(f"layers.{i}.downsample.reduction.weight", dims[i + 1], 4 * dim)
            put(f"layers.{i}.downsample.norm.weight", 4 * dim)
            put(f"layers.{i}.downsample.norm.bias", 4 * dim)
    head = "" if names == "v0" else "classifier."
    put(f"{head}norm.weight", dims[-1])
    put(f"{head}norm.bias", dims[-1])
    put(f"{head}head.weight", 1000, dims[-1])
    put(f"{head}head.bias", 1000)
    return state


def our_name(key: str) -> str:
    """Where an official encoder key lands in SumSaliency (the spec of the mapping)."""
    for old, new in [
        ("patch_embed.0.", "patch_embed.proj."),
        ("patch_embed.2.", "patch_embed.norm."),
        (".ln_1.", ".norm."),
        (".self_attention.", ".op."),
    ]:
        key = key.replace(old, new)
    return f"encoder.{key}"


@pytest.mark.parametrize(
    ("names", "suffix", "mlp_ratio"), [("v0", ".pth", 0.0), ("v1", ".safetensors", 2.0)]
)
def test_official_vmamba_checkpoints_load_completely(tmp_path, names, suffix, mlp_ratio):
    config = replace(TINY, mlp_ratio=mlp_ratio)
    official = official_state_dict(config, names)
    path = tmp_path / f"vmamba{suffix}"
    if suffix == ".pth":
        torch.save({"model": official, "epoch": 238}, path)  # a training checkpoint's layout
    else:
        save_file(official, str(path))
    model = SumSaliency(config)
    report = load_vmamba_checkpoint(model, path)
    assert report.complete and not report.missing and not report.unexpected, str(report)
    assert len(report.dropped) == 4  # the classifier's norm and head
    ours = model.state_dict()
    encoder = [k for k in ours if k.startswith("encoder.") and ".out_norms." not in k]
    assert sorted(report.loaded) == sorted(encoder)
    for key, value in official.items():
        if "head." in key or key.startswith(("norm.", "classifier.")):
            continue
        torch.testing.assert_close(ours[our_name(key)], value, rtol=0, atol=0)
    # and through the config, as training would build it
    built = SumSaliency(replace(config, encoder_pretrained=True, encoder_checkpoint=str(path)))
    torch.testing.assert_close(
        built.state_dict()["encoder.patch_embed.proj.weight"],
        official[f"patch_embed.{'proj' if names == 'v0' else '0'}.weight"],
    )


def test_checkpoints_that_do_not_fit_are_reported(tmp_path):
    official = official_state_dict(TINY, "v1")
    model = SumSaliency(TINY)
    # conv downsampling (VMamba's downsample_version v2): named, with the reason
    conv = {k: v for k, v in official.items() if ".downsample." not in k}
    conv["layers.0.downsample.1.weight"] = torch.randn(16, 8, 2, 2)
    save_file(conv, str(tmp_path / "conv.safetensors"))
    with pytest.raises(ValueError, match="downsample_version") as info:
        load_vmamba_checkpoint(model, tmp_path / "conv.safetensors")
    assert "missing: encoder.layers.0.downsample.norm.bias" in str(info.value)
    # another width: shapes named; strict=False loads what fits and reports the rest
    wide = official_state_dict(replace(TINY, d_state=8), "v1")
    save_file(wide, str(tmp_path / "wide.safetensors"))
    with pytest.raises(ValueError, match=r"A_logs: file \(64, 8\) vs model \(64, 4\)"):
        load_vmamba_checkpoint(model, tmp_path / "wide.safetensors")
    report = load_vmamba_checkpoint(model, tmp_path / "wide.safetensors", strict=False)
    assert report.mismatched and not report.complete
    torch.testing.assert_close(
        model.state_dict()["encoder.patch_embed.proj.weight"], wide["patch_embed.0.weight"]
    )


class TrainingConfig:
    """Stands for the config object VMamba's training checkpoints pickle."""


def test_pickled_objects_need_trust(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": official_state_dict(TINY, "v0"), "config": TrainingConfig()}, path)
    model = SumSaliency(TINY)
    with pytest.raises(ValueError, match="trusted=True"):
        load_vmamba_checkpoint(model, path)
    assert load_vmamba_checkpoint(model, path, trusted=True).complete


# The registry ----------------------------------------------------------------------------------


def test_registry_refuses_pretrained_and_restores_checkpoints(tmp_path):
    overrides = {"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1), "decoder_depths": (1, 1, 1, 1)}
    with pytest.raises(RuntimeError, match="no trained weights ship"):
        create_model("sum-vmamba-tiny", pretrained=True)
    torch.manual_seed(0)
    model = create_model("sum-lite0", encoder_pretrained=False, **overrides).eval()
    save_file(model.state_dict(), str(tmp_path / "sum.safetensors"))
    again = create_model("sum-lite0", checkpoint=tmp_path / "sum.safetensors", **overrides).eval()
    images = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(again(images, 3)["saliency"], model(images, 3)["saliency"])


# Learning --------------------------------------------------------------------------------------


def test_a_tiny_sum_overfits_four_osie_images(osie):
    """60 Adam steps on four real images at 64 x 64: the fixations' likelihood climbs from
    chance to well above it."""
    size = 64
    images, points = [], []
    for stimulus in list(osie.split("train"))[:4]:
        pixels = Image.fromarray(load_image(stimulus.path)).resize((size, size), Image.BILINEAR)
        images.append(torch.from_numpy(np.array(pixels)).permute(2, 0, 1).float() / 255)
        x, y = stimulus.fixations()
        xy = np.stack([x / stimulus.width, y / stimulus.height], axis=1)
        points.append(torch.tensor(xy, dtype=torch.float32))  # (M, 2) normalized
    batch = torch.stack(images)  # (4, 3, 64, 64)
    torch.manual_seed(0)
    config = SumConfig(
        dims=(16, 32, 64, 128),
        depths=(1, 1, 1, 1),
        decoder_depths=(1, 1, 1, 1),
        d_state=8,
        token_dim=16,
        image_size=(size, size),
    )
    model = SumSaliency(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        out = model(batch, Condition.EYE_NATURAL)
        loss = fixation_nll_bits(out["log_density"], points)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert abs(losses[0]) < 0.2, losses[0]  # a fresh model is about uniform
    assert np.mean(losses[-5:]) < -1.5, losses[-5:]  # bits per fixation better than uniform
