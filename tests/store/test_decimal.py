"""Values split into decimal mantissa and exponent come back exactly."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from vigil.store.decimal import RAW_EXPONENT, join, split


def test_short_decimals_get_the_smallest_exponent() -> None:
    mantissa, exponent = split(np.array([77.44, 3.0, -0.07, 123456789.123, 0.5]))
    assert mantissa.tolist() == [7744, 3, -7, 123456789123, 5]
    assert exponent.tolist() == [2, 0, 2, 3, 1]


def test_other_values_keep_their_bits() -> None:
    values = np.array([1 / 3, 1e300, 5e-324, 0.1 + 0.2])
    mantissa, exponent = split(values)
    assert (exponent == RAW_EXPONENT).all()
    assert join(mantissa, exponent).tolist() == values.tolist()


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=50))
def test_round_trip_is_exact(values: list[float]) -> None:
    array = np.array(values, dtype=np.float64)
    assert join(*split(array)).tolist() == array.tolist()


@given(st.lists(st.decimals(-(10**9), 10**9, places=2, allow_nan=False), max_size=50))
def test_two_decimal_values_use_small_mantissas(values: list[object]) -> None:
    array = np.array([float(v) for v in values], dtype=np.float64)  # type: ignore[arg-type]
    mantissa, exponent = split(array)
    assert (exponent <= 2).all() and (exponent >= 0).all()
    assert join(mantissa, exponent).tolist() == array.tolist()
