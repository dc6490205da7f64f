"""gexhistory.columnar (Arrow <-> numpy through buffers, without pandas) against pyarrow's own
conversions, on sliced and chunked arrays with and without nulls."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexhistory.columnar import strings, to_arrow, to_numpy

KINDS = st.sampled_from(["float64", "bool", "int32", "int8", "date32"])


def _values(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if kind == "float64":
        return rng.normal(size=n)
    if kind == "bool":
        return rng.random(n) < 0.5
    return rng.integers(-100, 100, n).astype(np.int8 if kind == "int8" else np.int32)


@settings(max_examples=80, deadline=None)
@given(kind=KINDS, n=st.integers(0, 70), seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 70), max_size=4),
       lo=st.integers(0, 9), nulls=st.booleans())
def test_to_numpy_matches_pyarrow_on_slices_and_chunks(kind, n, seed, cuts, lo, nulls):
    rng = np.random.default_rng(seed)
    v = _values(kind, n, rng)
    null = (rng.random(n) < 0.3) if nulls and kind == "float64" else None
    typ = pa.date32() if kind == "date32" else None
    whole = to_arrow(v, null, type=typ)
    reference = pa.array(v, mask=null, type=typ or pa.from_numpy_dtype(v.dtype))  # pyarrow's own conversion
    assert whole.equals(reference)
    # Chunks at arbitrary cuts, the first one sliced at an offset that is no multiple of 8 (bitmaps).
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})
    chunks = [whole.slice(a, b - a) for a, b in zip(bounds[:-1], bounds[1:])]
    if chunks and len(chunks[0]) > lo:
        chunks[0] = chunks[0].slice(lo)
    chunked = pa.chunked_array(chunks, type=whole.type)
    expected = chunked.to_numpy()
    got = to_numpy(chunked)
    if kind == "date32":
        expected = expected.astype("datetime64[D]").astype(np.int64)
    assert got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=kind == "float64")


def test_nulls_without_a_value_to_stand_for_them_are_refused():
    with pytest.raises(ValueError, match="nulls"):
        to_numpy(pa.array([1, None, 3], type=pa.int32()))
    with pytest.raises(ValueError, match="fixed-width"):
        to_numpy(pa.array(["a", "b"]))


def test_strings_are_utf8():
    assert strings(["P", "C", "", "é"]).to_pylist() == ["P", "C", "", "é"]
    assert strings([]).to_pylist() == []


@settings(max_examples=120, deadline=None)
@given(st.lists(st.integers(-5, 40), max_size=60), st.integers(0, 2))
def test_dense_codes_and_unique_days_are_numpys_unique(values, spread):
    """The chain reader's codes by a table over the span (sources/chains/common.py) equal np.unique's,
    with every value of the span present (a one-day file's names) or gaps in it."""
    from gexhistory.sources.chains.common import dense_codes, unique_days

    v = np.array(values, dtype=np.int64) * (spread + 1)
    got, at = dense_codes(v)
    want, inverse = np.unique(v, return_inverse=True)
    assert got.tolist() == want.tolist() and at.tolist() == inverse.reshape(-1).tolist()
    days = np.datetime64("2025-06-02") + v
    got_days, at_days = unique_days(days)
    assert got_days.tolist() == np.unique(days).tolist() and at_days.tolist() == at.tolist()
