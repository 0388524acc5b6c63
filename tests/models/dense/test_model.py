"""The dense model's pieces: blur, readout, output density, loss, variants, weight files."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from scipy.ndimage import gaussian_filter1d

from salience.models.blur import gaussian_blur
from salience.models.dense import (
    VARIANTS,
    DenseConfig,
    DenseDensity,
    DenseSaliency,
    checkpoint_metadata,
)
from salience.models.density import input_size_for
from salience.models.losses import fixation_nll_bits
from salience.models.metadata import CheckpointError
from salience.models.registry import create_model, load_checkpoint
from salience.training.config import ModelConfig
from salience.training.dense import DenseTask

SMALL = DenseConfig(backbone_pretrained=False, image_size=(64, 96), input_pixels=64 * 96)


@pytest.mark.parametrize("sigma", [0.7, 2.0, 4.5])
def test_blur_matches_scipy(sigma):
    x = torch.rand(2, 1, 30, 41, dtype=torch.float64)
    radius = 12
    got = gaussian_blur(x, torch.tensor(sigma, dtype=torch.float64), radius).numpy()
    # torch's "reflect" padding is scipy's "mirror" mode
    want = gaussian_filter1d(x.numpy(), sigma, axis=-1, mode="mirror", truncate=radius / sigma)
    want = gaussian_filter1d(want, sigma, axis=-2, mode="mirror", truncate=radius / sigma)
    np.testing.assert_allclose(got, want, atol=1e-12)


def test_blur_of_tiny_maps_keeps_shape():
    x = torch.rand(1, 1, 1, 5)
    assert gaussian_blur(x, torch.tensor(2.0), 8).shape == x.shape


@pytest.mark.parametrize(
    ("size", "pixels"), [((600, 800), 384 * 512), ((256, 256), 384 * 512), ((100, 3000), 5000)]
)
def test_input_size_keeps_aspect_in_multiples_of_32(size, pixels):
    height, width = input_size_for(size, pixels)
    assert height % 32 == 0 and width % 32 == 0 and height >= 32 and width >= 32
    assert abs(math.log((width / height) / (size[1] / size[0]))) < 0.35 or min(height, width) == 32
    assert input_size_for((600, 800), 384 * 512) == (384, 512)


def test_readout_equals_projecting_the_concatenated_upsampled_features():
    torch.manual_seed(0)
    model = DenseSaliency(SMALL).eval()
    readout = model.readouts[0]
    for norm in readout.norms:  # non-trivial running statistics
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
    features = [torch.randn(2, c, 8 // 2**i, 12 // 2**i) for i, c in enumerate([40, 112, 320])]
    fast = readout(features, (16, 24))
    # the textbook form: normalize, upsample, concatenate, one 1x1 convolution
    grid = features[0].shape[-2:]
    normed = [n(f) for n, f in zip(readout.norms, features, strict=True)]
    up = torch.cat([F.interpolate(f, size=grid, mode="bilinear") for f in normed], dim=1)
    weight = torch.cat([p.weight for p in readout.projections], dim=1)
    x = F.conv2d(up, weight) + readout.bias
    x = F.interpolate(readout.convs(x), size=(16, 24), mode="bilinear")
    sigma = readout.log_sigma.exp()
    x = gaussian_blur(x, sigma, SMALL.blur_radius)
    x = x + F.interpolate(readout.log_prior, size=(16, 24), mode="bilinear")
    slow = F.log_softmax(x.flatten(1), dim=1).view(2, 16, 24)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_runs_forward_and_backward(name):
    model = create_model(name, backbone_pretrained=False, image_size=(64, 96))
    images = torch.rand(2, 3, 64, 96)
    out = model(images)["log_density"]  # (2, 16, 24)
    assert out.shape == (2, 16, 24)
    torch.testing.assert_close(out.exp().sum((1, 2)), torch.ones(2))
    loss = fixation_nll_bits(out, [torch.rand(5, 2), torch.rand(3, 2)])
    loss.backward()
    for key, param in model.readouts[0].named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), key
    assert model.readouts[0].log_prior.grad.abs().sum() > 0


def test_several_readouts_predict_the_mixture_of_their_densities():
    torch.manual_seed(0)
    model = DenseSaliency(replace(SMALL, readouts=3)).eval()
    images = torch.rand(2, 3, 64, 96)
    out = model(images)
    members = out["member_log_densities"]  # (2, 3, 16, 24)
    assert members.shape == (2, 3, 16, 24)
    mixture = members.exp().mean(dim=1).log()  # the mixture, computed the plain way
    torch.testing.assert_close(out["log_density"], mixture, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["log_density"].exp().sum((1, 2)), torch.ones(2))
    assert not torch.allclose(members[:, 0], members[:, 1])  # heads start apart
    features = model.backbone(images)
    alone = model.readouts[2](features, (16, 24))
    torch.testing.assert_close(members[:, 2], alone)


@pytest.mark.parametrize("ensemble_loss", ["members", "mixture"])
def test_ensemble_loss_trains_members_or_their_mixture(ensemble_loss):
    torch.manual_seed(0)
    overrides = {"backbone_pretrained": False, "readouts": 2, "ensemble_loss": ensemble_loss}
    task = DenseTask(ModelConfig(name="dense-lite0", overrides=overrides), (64, 96))
    model = task.build_model()
    out = model(torch.rand(2, 3, 64, 96))
    points = [torch.rand(6, 2), torch.rand(4, 2)]
    got = task.loss(out, {"points": points})["loss"]
    if ensemble_loss == "members":
        members = out["member_log_densities"]
        want = (
            fixation_nll_bits(members[:, 0], points) + fixation_nll_bits(members[:, 1], points)
        ) / 2
    else:
        want = fixation_nll_bits(out["log_density"], points)
    torch.testing.assert_close(got, want)
    got.backward()
    for readout in model.readouts:
        assert readout.log_prior.grad.abs().sum() > 0


def test_config_rejects_bad_ensembles():
    with pytest.raises(ValueError, match="readouts"):
        replace(SMALL, readouts=0)
    with pytest.raises(ValueError, match="ensemble_loss"):
        replace(SMALL, ensemble_loss="average")


def test_forward_from_features_equals_forward_from_images():
    model = DenseSaliency(SMALL).eval()
    images = torch.rand(1, 3, 64, 96)
    direct = model(images)["log_density"]
    cached = model(features=model.backbone(images), input_size=(64, 96))["log_density"]
    torch.testing.assert_close(direct, cached)
    with pytest.raises(ValueError, match="input_size"):
        model(features=model.backbone(images))


def test_nll_bits_matches_a_direct_computation():
    torch.manual_seed(1)
    log_density = F.log_softmax(torch.randn(2, 6, 8).flatten(1), 1).view(2, 6, 8)
    points = [torch.tensor([[0.01, 0.01], [0.99, 0.5], [0.5, 0.999]]), torch.zeros(0, 2)]
    want = -np.mean(
        [
            (log_density[0, r, c].item() + math.log(48)) / math.log(2)
            for r, c in [(0, 0), (3, 7), (5, 4)]
        ]
    )
    assert fixation_nll_bits(log_density, points).item() == pytest.approx(want, rel=1e-6)
    uniform = torch.full((1, 6, 8), -math.log(48))
    assert fixation_nll_bits(uniform, [torch.rand(7, 2)]).item() == pytest.approx(0, abs=1e-6)
    assert fixation_nll_bits(uniform, [torch.zeros(0, 2)]).item() == 0.0


def test_density_at_the_image_size_sums_to_one():
    density = DenseDensity(DenseSaliency(SMALL))
    image = np.random.default_rng(0).integers(0, 256, (75, 130, 3), dtype=np.uint8)
    log_density = density.log_density(image, (75, 130))
    assert log_density.shape == (75, 130) and log_density.dtype == np.float64
    assert np.exp(log_density).sum() == pytest.approx(1.0, abs=1e-9)
    batch = density.log_densities([image, image[:40], image])
    np.testing.assert_allclose(batch[0], log_density, atol=1e-6)
    assert batch[1].shape == (40, 130)


def test_fp16_weight_file_round_trips(tmp_path):
    torch.manual_seed(0)
    model = DenseSaliency(replace(SMALL, readout=(8,))).eval()
    path = tmp_path / "m.safetensors"
    tensors = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata=checkpoint_metadata(model, "dense-lite0"))
    loaded = load_checkpoint(path)
    assert isinstance(loaded, DenseDensity) and loaded.model.config.readout == (8,)
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    ours = DenseDensity(model).log_density(image, (64, 96))
    np.testing.assert_allclose(loaded.log_density(image, (64, 96)), ours, atol=2e-2)
    with pytest.raises(CheckpointError, match=r"missing\.safetensors: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_pretrained_variants_point_to_the_shipped_model():
    with pytest.raises(RuntimeError, match="default"):
        create_model("dense-lite0", pretrained=True)


def test_flip_average_is_mirror_symmetric():
    torch.manual_seed(0)
    density = DenseDensity(DenseSaliency(replace(SMALL, flip_average=True)))
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    plain = density.log_density(image, (64, 96))
    mirrored = density.log_density(np.ascontiguousarray(image[:, ::-1]), (64, 96))
    np.testing.assert_allclose(mirrored, plain[:, ::-1], atol=1e-5)
    assert np.exp(plain).sum() == pytest.approx(1.0, abs=1e-9)


def test_several_backbones_each_feed_their_own_readouts():
    names = ("tf_efficientnet_lite0", "tf_efficientnet_lite2")
    config = replace(SMALL, backbone=list(names), readouts=4, out_indices=(2, 3))
    assert config.backbone == names and config.backbones == names  # lists become tuples
    torch.manual_seed(0)
    model = DenseSaliency(config).eval()
    lite0, lite2 = (m.channels for m in model.backbone.members)
    assert lite0 != lite2 and model.backbone.channels == lite0 + lite2
    assert [r.norms[0].num_features for r in model.readouts] == [lite0[0], lite2[0]] * 2
    images = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        out = model(images)
        features = model.backbone(images)
        # readout 1 reads the second backbone's maps, and only those
        alone = model.readouts[1](model.backbone.members[1](images), (16, 24))
    assert len(features) == 4 and out["member_log_densities"].shape == (2, 4, 16, 24)
    torch.testing.assert_close(out["member_log_densities"][:, 1], alone)
    torch.testing.assert_close(out["log_density"].exp().sum((1, 2)), torch.ones(2))
    # the file describes the whole set: it rebuilds the same model, folded batch norms included
    rebuilt = DenseDensity.format.config(checkpoint_metadata(model, "dense-mix"), "test")
    assert rebuilt.backbones == names
    density = DenseDensity(model)
    DenseDensity.for_inference(model)
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    assert np.exp(density.log_density(image, (64, 96))).sum() == pytest.approx(1.0, abs=1e-9)


def test_readouts_must_split_evenly_over_the_backbones():
    with pytest.raises(ValueError, match="multiple of the backbones"):
        replace(SMALL, backbone=("tf_efficientnet_lite0", "tf_efficientnet_lite1"), readouts=3)
    one = replace(SMALL, backbone=["tf_efficientnet_lite1"])
    assert one.backbone == "tf_efficientnet_lite1"  # one name stays a name: the same file layout
    assert next(iter(DenseSaliency(SMALL).state_dict())).startswith("backbone.body.")


def test_mirror_averaging_only_where_gaze_is_mirror_symmetric():
    from salience.data.conditions import Condition

    model = DenseSaliency(replace(SMALL, flip_average=True))
    metadata = {"model": "dense-lite0", "conditions": '["eye", "ui"]'}
    assert DenseDensity(model, metadata, "eye").flip_average
    assert not DenseDensity(model, metadata, "ui").flip_average  # pages read left to right
    assert [c.mirror_symmetric for c in Condition] == [True, True, False]


def test_blur_per_channel_is_each_channel_blurred_alone():
    x = torch.rand(2, 3, 20, 27, dtype=torch.float64)
    sigmas = torch.tensor([0.7, 2.0, 4.5], dtype=torch.float64)
    together = gaussian_blur(x, sigmas, 8)
    for c, sigma in enumerate(sigmas):
        torch.testing.assert_close(together[:, c : c + 1], gaussian_blur(x[:, c : c + 1], sigma, 8))


@pytest.mark.parametrize("readout", [(8, 4), (6,), ()])
def test_fused_readouts_compute_what_the_readouts_do(readout):
    torch.manual_seed(0)
    model = DenseSaliency(replace(SMALL, readouts=3, readout=readout, dropout=0.3))
    with torch.no_grad():  # trained-looking readouts: statistics, scales and widths of their own
        for r in model.readouts:
            for norm in r.norms:
                norm.running_mean.normal_()
                norm.running_var.uniform_(0.5, 2.0)
                norm.weight.normal_()
                norm.bias.normal_()
            r.bias.normal_()
            r.log_sigma.uniform_(-0.5, 1.0)
            r.log_prior.normal_()
    images = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        want = model.eval()(images)
        model.fuse_readouts()
        got = model(images)
    assert model.fused is not None
    for key in ("log_density", "member_log_densities"):
        torch.testing.assert_close(got[key], want[key], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="eval mode"):
        model.train().fuse_readouts()


def test_readouts_on_different_backbones_stay_apart():
    config = replace(SMALL, backbone=("tf_efficientnet_lite0", "tf_efficientnet_lite1"), readouts=2)
    model = DenseSaliency(config).eval()
    model.fuse_readouts()
    assert model.fused is None  # nothing to share: each readout reads its own features
