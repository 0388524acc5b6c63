"""The dense models' loss: the negative log-likelihood of human fixations, in bits per fixation.

Every fixation on the image (all observers pooled) counts, relative to a uniform density and
averaged over images (:func:`salience.models.losses.fixation_nll_bits`, the twin of the
log-likelihood metric). A model with several readouts is trained as its config's
``ensemble_loss`` says: each readout's own loss, averaged (an ensemble trained in one run), or
the loss of their mixture. A model with viewing-time ``windows`` trains readout k on every
fixation weighted by its dwell in window k (``dwell``: per image (M, K) seconds), so each
readout learns where the gaze dwells during its window.
"""

from __future__ import annotations

import torch
from torch import Tensor

from salience.models.losses import fixation_nll_bits


def dense_loss(
    outputs: dict[str, Tensor],
    points: list[Tensor],
    ensemble_loss: str = "members",
    dwell: list[Tensor] | None = None,
) -> Tensor:
    """The loss to minimize for a :class:`~salience.models.dense.model.DenseSaliency`'s
    ``outputs`` on a batch whose fixations are ``points`` (per image (M, 2) normalized)."""
    members = outputs["member_log_densities"].float()  # (B, K, h, w)
    if dwell is None and (members.shape[1] == 1 or ensemble_loss == "mixture"):
        return fixation_nll_bits(outputs["log_density"].float(), points)
    each = [
        fixation_nll_bits(
            members[:, k], points, None if dwell is None else [d[:, k] for d in dwell]
        )
        for k in range(members.shape[1])
    ]
    return torch.stack(each).mean()
