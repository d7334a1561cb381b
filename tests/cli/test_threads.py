"""The ``trainwise`` command picks torch's thread count from the cores it may use, not the machine's."""

import os

import pytest

from trainwise.cli.main import torch_threads


def test_omp_num_threads_wins():
    assert torch_threads({"OMP_NUM_THREADS": "3"}) == 3
    assert torch_threads({"TRAINWISE_NUM_THREADS": "2", "OMP_NUM_THREADS": "5"}) == 2


def test_bad_value_is_refused_with_its_name():
    with pytest.raises(ValueError, match="OMP_NUM_THREADS='many'"):
        torch_threads({"OMP_NUM_THREADS": "many"})


def test_default_stays_within_the_cores_of_this_process(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.1, 0.0, 0.0))
    assert torch_threads({}) == 4
    monkeypatch.setattr(os, "getloadavg", lambda: (2.6, 0.0, 0.0))  # other jobs keep ~3 cores busy
    assert torch_threads({}) == 1
    monkeypatch.setattr(os, "getloadavg", lambda: (40.0, 0.0, 0.0))
    assert torch_threads({}) == 1
