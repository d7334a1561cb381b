import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainwise.data.sft.mixing import TaskMixtureSampler, expected_epochs, mixing_rates


def test_rates_closed_forms():
    sizes = {"big": 100_000, "mid": 5_000, "small": 200}
    assert mixing_rates(sizes).tolist() == pytest.approx([100_000 / 105_200, 5_000 / 105_200, 200 / 105_200])
    capped = mixing_rates(sizes, cap=10_000)
    assert capped.tolist() == pytest.approx([10_000 / 15_200, 5_000 / 15_200, 200 / 15_200])
    hot = mixing_rates(sizes, mode="temperature", temperature=2.0, cap=10_000)
    w = np.sqrt([10_000, 5_000, 200])
    assert hot.tolist() == pytest.approx((w / w.sum()).tolist())
    assert mixing_rates(sizes, mode="equal").tolist() == pytest.approx([1 / 3] * 3)
    # T -> infinity approaches equal mixing
    assert mixing_rates(sizes, mode="temperature", temperature=1e6).tolist() == pytest.approx([1 / 3] * 3, abs=1e-4)
    assert expected_epochs([100, 10], [0.5, 0.5], 1000).tolist() == [5.0, 50.0]


@pytest.mark.parametrize("bad", [dict(mode="nope"), dict(cap=0), dict(mode="temperature", temperature=0.0)])
def test_rates_reject_bad_arguments(bad):
    with pytest.raises(ValueError):
        mixing_rates([1, 2], **bad)
    with pytest.raises(ValueError, match="-3"):
        TaskMixtureSampler({"a": -3})


@pytest.mark.parametrize("mode, kwargs", [("proportional", {"cap": 3000}), ("temperature", {"temperature": 3.0})])
def test_empirical_proportions_match_formula(mode, kwargs):
    sizes = {"gsm8k": 7473, "dolly": 1000, "tiny": 50}
    sampler = TaskMixtureSampler(sizes, mode=mode, seed=3, **kwargs)
    n = 100_000
    indices = sampler.take(n)
    rates = mixing_rates(sizes, mode=mode, **kwargs)
    # counts from the indices themselves (independent of the sampler's own counter)
    bounds = np.cumsum([0, *sizes.values()])
    counts = np.histogram(indices, bins=bounds)[0]
    assert counts.tolist() == sampler.counts.tolist()
    sigma = np.sqrt(rates * (1 - rates) / n)
    assert np.all(np.abs(counts / n - rates) < 4 * sigma), (counts / n, rates)
    chi2 = float(np.sum((counts - n * rates) ** 2 / (n * rates)))
    assert chi2 < 13.8  # 99.9% quantile of chi-square with 2 degrees of freedom
    epochs = sampler.effective_epochs()
    assert epochs["tiny"] == pytest.approx(counts[2] / 50)


def test_within_task_without_replacement():
    sampler = TaskMixtureSampler({"a": 7, "b": 5}, seed=0)
    indices = sampler.take(400)
    a = [i for i in indices if i < 7]
    for start in range(0, len(a) - 7 + 1, 7):  # every pass over task a is a permutation
        assert sorted(a[start : start + 7]) == list(range(7))


def test_resume_gives_identical_continuation():
    kwargs = dict(sizes={"x": 1000, "y": 37, "z": 5}, mode="temperature", temperature=2.0, num_samples=500, seed=11)
    reference = TaskMixtureSampler(**kwargs)
    full = reference.take(9000)
    first = TaskMixtureSampler(**kwargs)
    head = first.take(4321)
    state = first.state_dict()
    resumed = TaskMixtureSampler(**kwargs)
    resumed.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, resumed.take(9000 - 4321)]), full)
    assert resumed.counts.tolist() == reference.counts.tolist()
    # rewinding to what was consumed, as after DataLoader prefetching
    rewound = TaskMixtureSampler(**kwargs)
    rewound.load_state_dict(first.state_dict(consumed=1000))
    assert np.array_equal(rewound.take(50), full[1000:1050])
    # state_dict round-trips
    assert resumed.state_dict() == reference.state_dict()


def test_resume_through_dataloader_mid_epoch():
    data = {"a": TensorDataset(torch.arange(100)), "b": TensorDataset(torch.arange(1000, 1010))}
    sampler = TaskMixtureSampler.from_datasets(data, mode="temperature", temperature=2.0, num_samples=64, seed=5)
    loader = DataLoader(TaskMixtureSampler.concat(data), sampler=sampler, batch_size=8)
    stream = [batch[0] for _ in range(2) for batch in loader]  # two epochs of 8 batches
    again = TaskMixtureSampler.from_datasets(data, mode="temperature", temperature=2.0, num_samples=64, seed=5)
    loader2 = DataLoader(TaskMixtureSampler.concat(data), sampler=again, batch_size=8)
    it = iter(loader2)
    got = [next(it)[0] for _ in range(3)]  # stop mid-epoch after 3 batches
    state = again.state_dict()
    third = TaskMixtureSampler.from_datasets(data, mode="temperature", temperature=2.0, num_samples=64, seed=5)
    third.load_state_dict(state)
    loader3 = DataLoader(TaskMixtureSampler.concat(data), sampler=third, batch_size=8)
    got += [b[0] for b in loader3]  # finishes the interrupted epoch (5 batches)
    got += [b[0] for b in loader3]  # and the next full one
    assert torch.equal(torch.cat(got), torch.cat(stream))


def test_state_from_other_configuration_is_refused():
    sampler = TaskMixtureSampler({"a": 10, "b": 10}, seed=0)
    sampler.take(5)
    other = TaskMixtureSampler({"a": 10, "b": 10}, seed=1)
    with pytest.raises(ValueError, match="seed"):
        other.load_state_dict(sampler.state_dict())


def test_exported_from_data_packages():
    import trainwise.data
    import trainwise.data.sft

    assert trainwise.data.TaskMixtureSampler is TaskMixtureSampler
    assert trainwise.data.sft.TaskMixtureSampler is TaskMixtureSampler


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 60), min_size=1, max_size=5), split=st.integers(0, 700),
       temperature=st.floats(0.5, 5.0), seed=st.integers(0, 2**31))
def test_resume_at_any_point_is_identical(sizes, split, temperature, seed):
    kwargs = dict(sizes=sizes, mode="temperature", temperature=temperature, seed=seed)
    full = TaskMixtureSampler(**kwargs).take(700)
    head = TaskMixtureSampler(**kwargs)
    first = head.take(split)
    resumed = TaskMixtureSampler(**kwargs)
    resumed.load_state_dict(head.state_dict())
    assert np.array_equal(np.concatenate([first, resumed.take(700 - split)]), full)
    assert int(resumed.counts.sum()) == resumed.draws == 700
    assert np.all((0 <= full) & (full < sum(sizes)))


def test_data_parallel_ranks_partition_the_single_process_stream():
    kwargs = dict(sizes={"a": 50, "b": 7, "c": 3}, mode="temperature", temperature=2.0, num_samples=30, seed=2)
    single = list(TaskMixtureSampler(**kwargs))  # one epoch of 30
    ranks = [TaskMixtureSampler(**kwargs, rank=r, world_size=4) for r in range(4)]
    assert all(len(s) == 8 for s in ranks)  # 30 rounded up to 32, over 4 ranks
    streams = [list(s) for s in ranks]
    reference = TaskMixtureSampler(**kwargs).take(32).tolist()
    interleaved = [streams[r][i] for i in range(8) for r in range(4)]
    assert interleaved == reference
    assert single == reference[:30]
    # global counts agree on every rank and with the single-process counts
    one = TaskMixtureSampler(**kwargs)
    one.take(32)
    assert all(s.counts.tolist() == one.counts.tolist() and s.draws == 32 for s in ranks)
    # resume rank 1 after 3 batches of 1 on each rank
    fresh = TaskMixtureSampler(**kwargs, rank=1, world_size=4)
    it = iter(fresh)
    head = [next(it) for _ in range(3)]
    resumed = TaskMixtureSampler(**kwargs, rank=1, world_size=4)
    resumed.load_state_dict(fresh.state_dict())
    assert head + list(resumed) == streams[1]
    with pytest.raises(ValueError, match="rank"):
        TaskMixtureSampler({"a": 3}, rank=2, world_size=2)
