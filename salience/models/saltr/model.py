"""SalTR: saliency as direct set prediction of fixations.

backbone -> input projection -> transformer encoder -> decoder with N fixation queries -> per
query a point (x, y) in [0, 1] and a fixation-vs-no-fixation logit. Matching, loss and the
conversion to a density live in ``matcher.py``, ``criterion.py`` and ``postprocess.py``.
"""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from salience.models.backbone import Backbone
from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.deformable import DeformableTransformer
from salience.models.saltr.transformer import Transformer

# timm feature stages used as inputs: strides 8, 16, 32; further levels are made by stride-2 convs
_BACKBONE_STAGES = (2, 3, 4)


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """logit(x), with x clamped to [eps, 1 - eps] so that 0 and 1 stay finite."""
    x = x.clamp(eps, 1 - eps)
    return (x / (1 - x)).log()


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(dims))

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = x.relu()
        return x


class SalTR(nn.Module):
    """Predicts a set of ``num_queries`` fixations per image.

    ``forward(images)`` takes RGB images in [0, 1], (B, 3, H, W), all of one size, and returns
    ``pred_points`` (B, N, 2) as normalized (x, y) in [0, 1] (x right, y down; a pixel (i, j) of
    an (H, W) image spans x in [j / W, (j + 1) / W)), ``pred_logits`` (B, N), the logit of
    "this query is a fixation", and ``aux_outputs``, the same two for every earlier decoder
    layer (empty unless ``config.aux_loss``).

    With deformable attention each query has a reference point and the head predicts the point
    relative to it (in logit space), as in Deformable DETR.

    With ``config.density_head`` the final layer also gives ``pred_sigmas`` (B, N), each
    query's Gaussian width in pixels of the input size (``config.sigma_px`` at initialization),
    and ``pred_weights`` (B, N), the logits of its weight in the density (softmax over queries).
    """

    def __init__(self, config: SaltrConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        deformable = config.attention == "deformable"
        n_backbone = min(config.n_levels, len(_BACKBONE_STAGES)) if deformable else 1
        self.backbone = Backbone(
            config.backbone,
            pretrained=config.backbone_pretrained,
            out_indices=_BACKBONE_STAGES[-n_backbone:],
            freeze_bn=config.freeze_backbone_bn,
        )
        if deformable:
            self.input_proj = nn.ModuleList(
                nn.Sequential(nn.Conv2d(c, d, kernel_size=1), nn.GroupNorm(32, d))
                for c in self.backbone.channels
            )
            in_channels = self.backbone.channels[-1]
            for _ in range(config.n_levels - n_backbone):
                self.input_proj.append(
                    nn.Sequential(
                        nn.Conv2d(in_channels, d, kernel_size=3, stride=2, padding=1),
                        nn.GroupNorm(32, d),
                    )
                )
                in_channels = d
            self.transformer: nn.Module = DeformableTransformer(config)
        else:
            self.input_proj = nn.ModuleList([nn.Conv2d(self.backbone.channels[-1], d, 1)])
            self.transformer = Transformer(config)
        self.class_head = nn.Linear(d, 1)
        self.point_head = MLP(d, d, 2, num_layers=3)
        if config.density_head:
            # both start neutral: every Gaussian of the config's width, equal weights
            self.sigma_head = nn.Linear(d, 1)
            self.weight_head = nn.Linear(d, 1)
            for head in (self.sigma_head, self.weight_head):
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)
        if deformable:
            # initial predictions sit on the reference points
            nn.init.zeros_(self.point_head.layers[-1].weight)
            nn.init.zeros_(self.point_head.layers[-1].bias)
            for proj in self.input_proj:
                nn.init.xavier_uniform_(proj[0].weight)
                nn.init.zeros_(proj[0].bias)

    def _project(self, features: list[Tensor]) -> list[Tensor]:
        """Backbone maps -> d_model maps, plus the extra downsampled levels."""
        n = len(features)
        srcs = [proj(f) for proj, f in zip(self.input_proj[:n], features, strict=True)]
        x = features[-1]
        for proj in self.input_proj[n:]:
            x = proj(x)  # (B, D, H / 2, W / 2)
            srcs.append(x)
        return srcs

    def forward(self, images: Tensor) -> dict:
        """(B, 3, H, W) in [0, 1] -> dict of pred_points, pred_logits, aux_outputs (and
        pred_sigmas, pred_weights with the density head)."""
        features = self.backbone(images)  # [(B, C_l, H_l, W_l)]
        hs, reference = self.transformer(self._project(features))  # (L, B, N, D)
        logits = self.class_head(hs).squeeze(-1)  # (L, B, N)
        point_logits = self.point_head(hs)  # (L, B, N, 2)
        if reference is not None:
            point_logits = point_logits + inverse_sigmoid(reference)  # (L, B, N, 2)
        points = point_logits.sigmoid()  # (L, B, N, 2)
        aux = []
        if self.config.aux_loss:
            aux = [
                {"pred_points": p, "pred_logits": lg}
                for p, lg in zip(points[:-1], logits[:-1], strict=True)
            ]
        outputs = {"pred_points": points[-1], "pred_logits": logits[-1], "aux_outputs": aux}
        if self.config.density_head:
            log_scale = self.sigma_head(hs[-1]).squeeze(-1).clamp(-3.0, 3.0)  # (B, N)
            outputs["pred_sigmas"] = self.config.sigma_px * log_scale.exp()  # (B, N)
            outputs["pred_weights"] = self.weight_head(hs[-1]).squeeze(-1)  # (B, N)
        return outputs


def build_saltr(config: SaltrConfig) -> SalTR:
    """Build a SalTR model from its config (the registry's variants all go through here)."""
    return SalTR(config)
