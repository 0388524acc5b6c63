"""Tests of the SalTR family. ``TINY``: the overrides that make any SalTR variant small enough
to build and run in a test (random weights, no backbone download)."""

TINY = dict(
    backbone_pretrained=False,
    d_model=32,
    nheads=2,
    enc_layers=1,
    dec_layers=2,
    dim_feedforward=64,
    num_queries=7,
    n_points=2,
)
