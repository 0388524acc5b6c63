"""DETR-style transformer: an encoder over the flattened feature map and a decoder whose N learned
fixation queries cross-attend to it. Post-norm layers (residual, then LayerNorm) as in DETR.

Images in a batch share one size, so there are no padding masks.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from salience.models.saltr.config import SaltrConfig
from salience.models.saltr.position import sine_position_encoding_2d


class FeedForward(nn.Module):
    """Position-wise MLP with residual and post-norm: ``norm(x + drop(W2 drop(relu(W1 x))))``."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: Tensor) -> Tensor:
        """(..., D) -> (..., D)."""
        y = self.linear2(self.dropout1(torch.relu(self.linear1(x))))  # (..., D)
        return self.norm(x + self.dropout2(y))


class EncoderLayer(nn.Module):
    """Self-attention over all feature-map positions, then the feed-forward block."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        """src, pos: (B, S, D) -> (B, S, D). Positions enter queries and keys, not values."""
        q = k = src + pos  # (B, S, D)
        attended = self.self_attn(q, k, value=src, need_weights=False)[0]  # (B, S, D)
        src = self.norm(src + self.dropout(attended))
        return self.ffn(src)


class DecoderLayer(nn.Module):
    """Query self-attention, cross-attention to the encoder memory, then the feed-forward block."""

    def __init__(self, d_model: int, nheads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, nheads, dropout=dropout, batch_first=True)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.ffn = FeedForward(d_model, dim_feedforward, dropout)

    def forward(self, tgt: Tensor, query_pos: Tensor, memory: Tensor, pos: Tensor) -> Tensor:
        """tgt, query_pos: (B, N, D); memory, pos: (B, S, D) -> (B, N, D)."""
        q = k = tgt + query_pos  # (B, N, D)
        attended = self.self_attn(q, k, value=tgt, need_weights=False)[0]  # (B, N, D)
        tgt = self.norm1(tgt + self.dropout1(attended))
        attended = self.cross_attn(tgt + query_pos, memory + pos, value=memory, need_weights=False)[
            0
        ]  # (B, N, D)
        tgt = self.norm2(tgt + self.dropout2(attended))
        return self.ffn(tgt)


class Transformer(nn.Module):
    """Encoder-decoder over one feature level with ``num_queries`` learned fixation queries.

    ``forward`` returns every decoder layer's output (after a shared final LayerNorm), so the
    heads can be applied to all of them for the auxiliary losses, and ``None`` for reference
    points (only the deformable transformer has them).
    """

    def __init__(self, config: SaltrConfig) -> None:
        super().__init__()
        d, h, ff, p = config.d_model, config.nheads, config.dim_feedforward, config.dropout
        self.encoder = nn.ModuleList(EncoderLayer(d, h, ff, p) for _ in range(config.enc_layers))
        self.decoder = nn.ModuleList(DecoderLayer(d, h, ff, p) for _ in range(config.dec_layers))
        self.decoder_norm = nn.LayerNorm(d)
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_uniform_(param)
        self.query_embed = nn.Embedding(config.num_queries, d)  # N(0, 1), as in DETR

    def forward(self, srcs: list[Tensor]) -> tuple[Tensor, None]:
        """srcs: one projected feature map [(B, D, H, W)] -> ((L, B, N, D), None)."""
        if len(srcs) != 1:
            raise ValueError(f"standard attention uses one feature level, got {len(srcs)}")
        src = srcs[0]
        b, d, h, w = src.shape
        pos = sine_position_encoding_2d(h, w, d, device=src.device, dtype=src.dtype)  # (D, H, W)
        pos = pos.flatten(1).T.unsqueeze(0).expand(b, -1, -1)  # (B, S, D), S = H * W
        memory = src.flatten(2).transpose(1, 2)  # (B, S, D)
        for layer in self.encoder:
            memory = layer(memory, pos)  # (B, S, D)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)  # (B, N, D)
        tgt = torch.zeros_like(query_pos)  # (B, N, D)
        outputs = []
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, memory, pos)  # (B, N, D)
            outputs.append(self.decoder_norm(tgt))
        return torch.stack(outputs), None  # (L, B, N, D)
