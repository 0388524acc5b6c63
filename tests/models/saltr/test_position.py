"""Sine positional encodings: shapes and values against the closed form."""

import math

import pytest
import torch

from salience.models.saltr.position import sine_encoding_1d, sine_position_encoding_2d


@pytest.mark.parametrize(
    ("height", "width", "dim"), [(1, 1, 4), (3, 5, 8), (7, 4, 32), (2, 9, 256)]
)
def test_2d_shape_and_range(height, width, dim):
    enc = sine_position_encoding_2d(height, width, dim)
    assert enc.shape == (dim, height, width)
    assert enc.dtype == torch.float32
    assert enc.abs().max() <= 1.0


def test_1d_matches_closed_form():
    coords = torch.tensor([0.0, 0.3, 1.7, 6.0], dtype=torch.float64)
    num_feats, temperature = 6, 100.0
    enc = sine_encoding_1d(coords, num_feats, temperature)
    assert enc.shape == (4, num_feats)
    for n, c in enumerate(coords.tolist()):
        for k in range(num_feats // 2):
            omega = temperature ** (-2 * k / num_feats)
            assert enc[n, 2 * k].item() == pytest.approx(math.sin(c * omega), abs=1e-12)
            assert enc[n, 2 * k + 1].item() == pytest.approx(math.cos(c * omega), abs=1e-12)


def test_2d_values_rows_then_columns():
    height, width, dim = 3, 5, 16
    enc = sine_position_encoding_2d(height, width, dim, dtype=torch.float64)
    for i in range(height):
        for j in range(width):
            y = (i + 0.5) / height * 2 * math.pi
            x = (j + 0.5) / width * 2 * math.pi
            expected_y = sine_encoding_1d(torch.tensor(y, dtype=torch.float64), dim // 2)
            expected_x = sine_encoding_1d(torch.tensor(x, dtype=torch.float64), dim // 2)
            torch.testing.assert_close(enc[: dim // 2, i, j], expected_y)
            torch.testing.assert_close(enc[dim // 2 :, i, j], expected_x)
    # the first channel pair is (sin, cos) of the lowest-index frequency, omega = 1
    assert enc[0, 1, 0].item() == pytest.approx(math.sin(1.5 / height * 2 * math.pi))
    assert enc[1, 1, 0].item() == pytest.approx(math.cos(1.5 / height * 2 * math.pi))


def test_2d_row_part_constant_along_rows_and_column_part_along_columns():
    enc = sine_position_encoding_2d(4, 6, 8)
    torch.testing.assert_close(enc[:4], enc[:4, :, :1].expand(-1, -1, 6))
    torch.testing.assert_close(enc[4:], enc[4:, :1, :].expand(-1, 4, -1))
    assert not torch.allclose(enc[:, 0, 0], enc[:, 1, 1])


def test_sin_cos_pairs_have_unit_norm():
    enc = sine_position_encoding_2d(5, 7, 32)
    pairs = enc.view(16, 2, 5, 7)
    torch.testing.assert_close(pairs.pow(2).sum(1), torch.ones(16, 5, 7))


def test_bad_dims_raise():
    with pytest.raises(ValueError, match="multiple of 4"):
        sine_position_encoding_2d(2, 2, 6)
    with pytest.raises(ValueError, match="even"):
        sine_encoding_1d(torch.zeros(3), 5)
