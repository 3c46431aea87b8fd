"""Quantized building blocks shared by every method: fake-quant, Int8 / Bin / Bin-R units, pooling, BinaryNorm,
and the `MacroBlock` configuration the precision search edits."""

from zippy_tf.quantization.binary_norm import BinaryNorm, lml_projection, top_k_binarize
from zippy_tf.quantization.blocks import binary_conv, build_macro_block, conv_unit, float_conv, int8_conv, pool_block
from zippy_tf.quantization.layers import DepthToSpace, FakeQuant, HardSwish, SpaceToDepth, Subsample2D
from zippy_tf.quantization.macro_block import (
    POOLINGS, PRECISIONS, ROLE_CANDIDATES, ROLES, MacroBlock, blocks_from_json, blocks_to_json,
)

__all__ = [
    "BinaryNorm", "DepthToSpace", "FakeQuant", "HardSwish", "MacroBlock", "POOLINGS", "PRECISIONS",
    "ROLES", "ROLE_CANDIDATES", "SpaceToDepth", "Subsample2D", "binary_conv", "blocks_from_json", "blocks_to_json",
    "build_macro_block", "conv_unit", "float_conv", "int8_conv", "lml_projection", "pool_block", "top_k_binarize",
]
