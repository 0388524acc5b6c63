"""The network input size of the grid models, torch-free (the ONNX Runtime backend uses it too)."""

from __future__ import annotations

import math


def input_size_for(size: tuple[int, int], pixels: int, multiple: int = 32) -> tuple[int, int]:
    """(height, width) for the network: the aspect of ``size``, about ``pixels`` pixels, each
    side a positive multiple of ``multiple``."""
    height, width = size
    scale = math.sqrt(pixels / (height * width))
    return (
        max(multiple, round(height * scale / multiple) * multiple),
        max(multiple, round(width * scale / multiple) * multiple),
    )
