import pytest

from zippy_tf._compat import keras
from zippy_tf.quantization.blocks import build_macro_block
from zippy_tf.quantization.cost import analytic_cost
from zippy_tf.quantization.macro_block import MacroBlock


def _model(precision):
    inputs = keras.Input((16, 16, 32))
    return keras.Model(inputs, build_macro_block(MacroBlock("b", "encoder", precision, 32), inputs))


@pytest.mark.parametrize("precision,fmt,kind", [("float", "fp32", "float"), ("int8", "lce", "int8"),
                                                ("bin", "lce", "binary"), ("float", "int8", "int8")])
def test_macs_are_counted_exactly_under_the_deployed_precision(precision, fmt, kind):
    cost = analytic_cost(_model(precision), fmt)
    assert cost["macs"][kind] == 16 * 16 * 3 * 3 * 32 * 32
    assert cost["total_macs"] == cost["macs"][kind]


def test_bop_cost_ranks_binary_below_int8_below_float():
    float_cost = analytic_cost(_model("float"), "fp32")["bop_cost"]
    int8_cost = analytic_cost(_model("int8"), "lce")["bop_cost"]
    bin_cost = analytic_cost(_model("bin"), "lce")["bop_cost"]
    assert bin_cost < int8_cost < float_cost
    assert float_cost / int8_cost == pytest.approx(4.0)
    assert float_cost / bin_cost == pytest.approx(64.0)
