"""Every registered SalTR variant builds, runs forward and backward, with random weights."""

import dataclasses

import pytest
import torch

import salience
from salience.models.saltr import VARIANTS, SaltrConfig, SetCriterion, build_saltr
from tests.models.saltr import TINY

# the registered variants; "saltr", the shipped model, is tested in test_shipped.py
SALTR_MODELS = [n for n in salience.list_models() if n.startswith("saltr") and n != "saltr"]


def test_all_variants_are_registered():
    assert set(SALTR_MODELS) == set(VARIANTS)
    assert {"saltr-r50", "saltr-lite0", "saltr-lite0-deformable", "saltr-r50-deformable"} <= set(
        SALTR_MODELS
    )


@pytest.mark.parametrize("name", SALTR_MODELS)
def test_forward_and_backward(name):
    torch.manual_seed(0)
    model = salience.create_model(name, **TINY)
    deformable = name.endswith("deformable") or name == "saltr-lite0-scanpath"
    assert model.config.attention == ("deformable" if deformable else "standard")
    images = torch.rand(2, 3, 64, 96)
    outputs = model(images)
    assert outputs["pred_points"].shape == (2, 7, 2)
    assert outputs["pred_logits"].shape == (2, 7)
    assert ((outputs["pred_points"] >= 0) & (outputs["pred_points"] <= 1)).all()
    assert len(outputs["aux_outputs"]) == 1
    aux = outputs["aux_outputs"][0]
    assert aux["pred_points"].shape == (2, 7, 2) and aux["pred_logits"].shape == (2, 7)
    losses = SetCriterion.from_config(model.config)(outputs, [torch.rand(4, 2), torch.zeros(0, 2)])
    losses["loss"].backward()
    assert torch.isfinite(losses["loss"])
    for pname, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), pname


def test_scanpath_variant_decodes_in_order():
    config = VARIANTS["saltr-lite0-scanpath"]
    assert config.matching == "sequential" and config.attention == "deformable"
    assert config.no_fixation_weight == 1.0 and config.num_queries >= 22  # OSIE's longest
    assert all(c.matching == "hungarian" for n, c in VARIANTS.items() if "scanpath" not in n)


def test_only_the_shipped_saltr_has_weights():
    with pytest.raises(RuntimeError, match="no trained weights ship for 'saltr-lite0'"):
        salience.create_model("saltr-lite0", pretrained=True, **TINY)


def test_overrides_replace_config_fields():
    model = salience.create_model("saltr-lite0-deformable", **{**TINY, "num_queries": 3})
    assert model.config == dataclasses.replace(
        VARIANTS["saltr-lite0-deformable"], **{**TINY, "num_queries": 3}
    )
    assert model.transformer.query_embed.num_embeddings == 3


def test_without_aux_loss_there_are_no_aux_outputs():
    model = build_saltr(SaltrConfig(backbone="tf_efficientnet_lite0", aux_loss=False, **TINY))
    assert model(torch.rand(1, 3, 32, 32))["aux_outputs"] == []


@pytest.mark.parametrize("n_levels", [1, 3, 5])
def test_deformable_levels_beyond_the_backbone(n_levels):
    config = SaltrConfig(
        backbone="tf_efficientnet_lite0", attention="deformable", n_levels=n_levels, **TINY
    )
    model = build_saltr(config).eval()
    assert len(model.input_proj) == n_levels
    assert len(model.backbone.channels) == min(n_levels, 3)
    with torch.no_grad():
        # the smallest level (stride 128 for n_levels=5) must be larger than 1x1: GroupNorm(32)
        # over d_model=32 channels needs more than one value per group
        first = model(torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)))
        again = model(torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(first["pred_points"], again["pred_points"])


def test_deformable_predictions_start_on_reference_points():
    model = build_saltr(
        SaltrConfig(backbone="tf_efficientnet_lite0", attention="deformable", **TINY)
    )
    outputs = model(torch.rand(1, 3, 64, 96))
    query_pos = model.transformer.query_embed.weight[:, : TINY["d_model"]]
    reference = model.transformer.reference_points(query_pos).sigmoid()
    torch.testing.assert_close(outputs["pred_points"][0], reference, atol=1e-4, rtol=0)


def test_invalid_configs_raise():
    with pytest.raises(ValueError, match="attention"):
        SaltrConfig(attention="sparse")
    with pytest.raises(ValueError, match="divisible"):
        SaltrConfig(d_model=30, nheads=4)
    with pytest.raises(ValueError, match="GroupNorm"):
        SaltrConfig(attention="deformable", d_model=48, nheads=4)
