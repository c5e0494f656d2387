"""The figures of mmseg_dsnet.analysis.benchmark from known timings and
inputs: statistics, throughput, speed-up, the batch and the test images
it times."""
import importlib

import numpy as np
import pytest
import torch
from conftest import REPO
from mmengine.config import Config

import mmseg_dsnet  # noqa: F401  (registration)

# The package exports the function ``benchmark`` under the module's name.
bench = importlib.import_module('mmseg_dsnet.analysis.benchmark')

DSNET_CFG = REPO / 'configs' / 'dsnet' / 'dsnet_isic2017.py'


def test_time_runs_warms_up_then_times_each_call(monkeypatch):
    calls = []
    ticks = iter([0.0, 0.25, 1.0, 1.5])
    monkeypatch.setattr(bench.time, 'perf_counter', lambda: next(ticks))
    times = bench.time_runs(calls.append, 'x', 3, 2, torch.device('cpu'))
    assert len(calls) == 5
    assert times.tolist() == [0.25, 0.5]


def test_time_runs_steps_its_progress_bar_outside_the_timed_calls(
        monkeypatch):
    """The bar steps once per call, warm-up and timed, and its step (a
    redraw of the bar on stderr) is not timed into the figures: here each
    call takes 1 s of a test clock and each step 100 s."""
    clock = [0.0]

    class Bar:
        steps = 0

        def update(self):
            self.steps += 1
            clock[0] += 100.0

    def call(_):
        clock[0] += 1.0

    monkeypatch.setattr(bench.time, 'perf_counter', lambda: clock[0])
    bar = Bar()
    times = bench.time_runs(call, 'x', 2, 3, torch.device('cpu'), bar)
    assert bar.steps == 2 + 3
    assert times.tolist() == [1.0, 1.0, 1.0]


def test_benchmark_is_silent_unless_asked_for_a_bar(capsys):
    """The bar is the command line's (``progress=True``); a caller of the
    function (leaderboard.py collect) gets no bar on its stderr."""
    cfg = Config.fromfile(str(DSNET_CFG))
    bench.benchmark(cfg, None, 'cpu', (32, 32), batch_size=1, warmup=1,
                    repeat=1, throughput_repeat=1)
    assert 'timing' not in capsys.readouterr().err


def test_latency_statistics_and_throughput_from_known_timings(monkeypatch):
    """Latency runs of 1, 2, 3, 4 and 10 ms, throughput runs of 0.5,
    0.25 and 1 s for a batch of 4: median 3 ms, mean 4 ms, p90 = 4 + 0.6
    x 6 = 7.6 ms (linear between the 4th and 5th), p99 9.76 ms, and 4 /
    0.5 s = 8 images per second."""
    timings = iter([np.array([0.003, 0.001, 0.010, 0.002, 0.004]),
                    np.array([0.5, 0.25, 1.0])])
    monkeypatch.setattr(bench, 'time_runs', lambda *a: next(timings))
    cfg = Config.fromfile(str(DSNET_CFG))
    result = bench.benchmark(cfg, None, 'cpu', (32, 32), batch_size=4,
                             warmup=1, repeat=5, throughput_repeat=3)
    lat = result['latency_ms']
    assert lat['median'] == pytest.approx(3.0)
    assert lat['mean'] == pytest.approx(4.0)
    assert lat['min'] == pytest.approx(1.0)
    assert lat['p90'] == pytest.approx(7.6)
    assert lat['p99'] == pytest.approx(9.76)
    assert lat['runs'] == 5
    # The untimed calls before the runs, as given.
    assert lat['warmup'] == 1
    # Warm-up: half the latency's, at least 2.
    assert result['throughput'] == dict(batch_size=4, img_per_s=8.0, runs=3,
                                        warmup=2)


def test_compare_deploy_is_the_ratio_of_medians_over_rounds():
    trained = iter([10.0, 12.0, 30.0])
    deployed = iter([5.0, 6.0, 4.0])

    def run(deploy):
        median = next(deployed if deploy else trained)
        return dict(latency_ms=dict(median=median), params=100,
                    params_deployed=80 if deploy else 100)

    result = bench.compare_deploy(run, rounds=3)
    assert result['latency_ms_trained'] == 12.0
    assert result['latency_ms_deployed'] == 5.0
    assert result['speedup'] == pytest.approx(2.4)
    assert result['params_trained'] == 100
    assert result['params_deployed'] == 80
    assert result['trained']['latency_ms']['median'] == 30.0
    assert result['deployed']['latency_ms']['median'] == 4.0


def test_make_batch_cycles_through_a_smaller_pool():
    pool = torch.arange(3.).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    batch = bench.make_batch(pool, 5, (2, 2))
    assert batch[:, 0, 0, 0].tolist() == [0, 1, 2, 0, 1]
    assert bench.make_batch(None, 2, (4, 6)).shape == (2, 3, 4, 6)


def test_test_images_are_resized_reordered_and_normalised(monkeypatch):
    """Each image resized to the shape, channels reversed for bgr_to_rgb,
    then (x - mean) / std: BGR (10, 20, 30) -> RGB (30, 20, 10) ->
    ((30 - 1) / 2, (20 - 2) / 4, (10 - 3) / 7)."""
    from mmseg.registry import DATASETS
    image = torch.tensor([10., 20., 30.]).view(3, 1, 1).expand(3, 4, 4)
    samples = [dict(inputs=image.to(torch.uint8))] * 3
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: samples)
    cfg = Config(dict(
        test_dataloader=dict(dataset=dict()),
        model=dict(data_preprocessor=dict(mean=[1, 2, 3], std=[2, 4, 7],
                                          bgr_to_rgb=True))))
    images = bench.load_test_images(cfg, 2, (2, 2))
    assert images.shape == (2, 3, 2, 2)
    expected = torch.tensor([14.5, 4.5, 1.0]).view(1, 3, 1, 1)
    torch.testing.assert_close(images, expected.expand(2, 3, 2, 2))


@pytest.mark.parametrize('rate, text', [(1234.4, '1234'), (100.0, '100'),
                                        (12.34, '12.3'), (0.3468, '0.347')])
def test_rate_text_keeps_three_significant_digits_below_100(rate, text):
    """Whole images per second from 100 up, else three significant digits:
    a batch of 2 in 5.77 s is 0.347 img/s, not 0 (mutation testing: one
    decimal, '0.3', passed)."""
    assert bench.rate_text(rate) == text


def test_test_images_are_resized_to_height_then_width(monkeypatch):
    """A (height, width) shape of (3, 5) gives images 3 rows high and 5
    columns wide, and a picture dark on its left and bright on its right
    stays so (mutation testing: the size given to interpolate as
    (width, height) passed with the square shapes)."""
    from mmseg.registry import DATASETS
    image = torch.zeros(3, 6, 10, dtype=torch.uint8)
    image[:, :, 5:] = 100
    monkeypatch.setattr(DATASETS, 'build', lambda cfg: [dict(inputs=image)])
    cfg = Config(dict(test_dataloader=dict(dataset=dict()),
                      model=dict(data_preprocessor=dict())))
    images = bench.load_test_images(cfg, 1, (3, 5))
    assert images.shape == (1, 3, 3, 5)
    assert (images[0, :, :, 0] == 0).all()
    assert (images[0, :, :, -1] == 100).all()


def test_time_runs_waits_for_the_device_before_each_clock_reading(
        monkeypatch):
    """On a GPU a call returns before its kernels finish: the device is
    synchronised after the warm-up and after each timed call, before the
    clock is read (mutation testing: the sync after a timed call left out
    passed)."""
    events = []
    monkeypatch.setattr(bench.time, 'perf_counter',
                        lambda: events.append('clock') or 0.0)
    monkeypatch.setattr(bench, '_sync', lambda device: events.append('sync'))
    bench.time_runs(lambda _: events.append('call'), 'x', 1, 2,
                    torch.device('cpu'))
    assert events == ['call', 'sync',
                      'clock', 'call', 'sync', 'clock',
                      'clock', 'call', 'sync', 'clock']


def test_thread_counts_up_to_the_usable_cpus_pass(monkeypatch):
    """As many threads as usable CPUs pass; one more is refused."""
    from mmseg_dsnet.utils.errors import UserError
    monkeypatch.setattr(bench, 'usable_cpus', lambda: 2)
    bench.check_cpu_threads([1, 2])
    with pytest.raises(UserError, match='--threads 1 3: .* on 2 CPU'):
        bench.check_cpu_threads([1, 3])


def test_benchmark_puts_back_the_callers_thread_count(monkeypatch):
    """threads=1 is set for the run only: the caller's count comes back
    after it (mutation testing: restoring the asked count passed)."""
    monkeypatch.setattr(bench, 'usable_cpus', lambda: 2)
    monkeypatch.setattr(bench, 'time_runs',
                        lambda *a, **k: np.array([0.001]))
    cfg = Config.fromfile(str(DSNET_CFG))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = bench.benchmark(cfg, None, 'cpu', (32, 32), batch_size=1,
                                 warmup=1, repeat=1, throughput_repeat=1,
                                 threads=1)
        assert result['threads'] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
