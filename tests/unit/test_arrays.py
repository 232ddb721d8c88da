"""Distinct values by sorting: the same answers as Python's sets and counters, for any integers."""

from collections import Counter

import numpy as np
import pytest

from kb.arrays import distinct, distinct_counts


@pytest.mark.parametrize("size", [0, 1, 2, 50, 5_000])
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_distinct_values_and_counts_match_a_set_and_a_counter(size, dtype):
    values = np.random.default_rng(size).integers(-20, 20, size=size).astype(dtype)
    counted = Counter(values.tolist())
    assert distinct(values).tolist() == sorted(counted)
    found, counts = distinct_counts(values)
    assert dict(zip(found.tolist(), counts.tolist(), strict=True)) == counted
    assert found.tolist() == sorted(counted)


def test_an_ascending_array_with_runs_keeps_one_of_each():
    assert distinct(np.array([1, 1, 1, 4, 4, 9])).tolist() == [1, 4, 9]
    assert distinct_counts(np.array([3, 3, 3]))[1].tolist() == [3]
