"""The benchmark's command line and its verdicts. Its speed figures are never asserted here (timed
tests would only measure how busy the machine is); what is tested is that it runs, refuses a bad
command line in one line, turns measurements into the right met / not met, and that the one
figure which does not depend on the machine's load, attention's peak memory, meets its target."""
import json
import subprocess
import sys

import numpy as np
import pytest

from numpy_transformer import bench


def run_bench(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "numpy_transformer.bench", *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("args, fragment", [
    (["--skip", "memory,trainig"], "'trainig'"),        # a typo must not silently start the full benchmark
    (["--rounds", "0"], "got 0"),
    (["--round", "3"], "--round"),                      # no abbreviations
])
def test_bad_command_line_is_one_line_and_exit_code_2(args, fragment):
    result = run_bench(*args, timeout=60)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert fragment in lines[0]


def test_bad_thread_count_in_the_environment_is_one_line_before_any_worker_starts(monkeypatch):
    monkeypatch.setenv(bench.SPLIT, "two")
    result = run_bench("--skip", "attention,memory,compile,generation", timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [f"python -m numpy_transformer.bench: error: {bench.SPLIT} must be "
                                                  "a whole number >= 0 (0: automatic), got 'two'"]


def test_memory_part_writes_json_and_keeps_no_t_by_t_buffer(tmp_path):
    """T=1024 attention forward+backward without weights: the Numba kernels hold less than one
    (B, H, T, T) buffer at their peak, the NumPy reference several (it builds the weights)."""
    out = tmp_path / "bench.json"
    result = run_bench("--quick", "--skip", "attention,training,compile,generation", "--json", str(out))
    assert result.returncode == 0, result.stderr
    results = json.loads(out.read_text())
    memory = results["attention_memory"]["backends"]
    assert memory["numba"]["peak_in_TxT_buffers"] < 1
    assert memory["numpy"]["peak_in_TxT_buffers"] > 1
    [verdict] = results["verdicts"]
    assert verdict["target"].startswith("attention T=1024") and verdict["met"]


def row(tokens_per_s, share=0.5):
    return {"tokens_per_s": tokens_per_s, "share_of_blas_peak": share}


def test_verdicts_compare_each_family_at_its_best():
    results = {
        "training": {"contenders": {
            "numba": row(100, share=0.56), "numba, no batch split": row(95),
            "numba, no batch split, kernels on 1 thread": row(90),
            "numba, no batch split, OpenBLAS threads poll": row(100),   # an undone setting that wins: not met
            "numpy": row(50), "numpy, OpenBLAS threads poll": row(80),
            "torch": row(95), "torch, OMP active wait": row(120)}},
        "attention": [{"mode": "fwdbwd", "numba": 1.0, "numpy": 4.0, "torch": 0.5},
                      {"mode": "fwdbwd", "numba": 1.0, "numpy": 1.0, "torch": 2.0},
                      {"mode": "fwd", "numba": 9.0, "numpy": 1.0, "torch": 1.0}],      # forward alone: not judged
        "compile": {"cold": {"compile_or_load_s": 31.0, "by_dtype_s": {"float32": 12.0}},
                    "cached": {"compile_or_load_s": 0.5}},
    }
    verdicts = bench.verdicts(results)

    def verdict(fragment):
        """(measured, met) of the one verdict whose target contains fragment."""
        [match] = [v for v in verdicts if fragment in v["target"]]
        return round(match["measured"], 3), match["met"]
    assert verdict(">= 1.3x NumPy") == (1.25, False)            # 100 / NumPy's best variant, 80
    assert verdict(">= 1.0x torch") == (0.833, False)           # 100 / torch's best variant, 120
    assert verdict("55% of BLAS peak") == (56.0, True)
    assert verdict("threads sharing the batch") == (1.053, True)
    assert verdict("kernels on 1 thread") == (1.056, True)
    assert verdict("OpenBLAS threads sleep") == (0.95, False)   # the undone setting was faster
    assert verdict("Numba >= 2x NumPy") == (2.0, True)          # geometric mean of 4 and 1
    assert verdict("Numba >= torch SDPA") == (1.0, True)        # geometric mean of 0.5 and 2
    assert verdict("cold compile") == (31.0, False)             # "at most" targets
    assert verdict("float32 only") == (12.0, True)
    assert verdict("cached load") == (0.5, True)
    assert len(verdicts) == 11


def test_training_share_of_the_best_peak_any_worker_measured(monkeypatch):
    """Each worker measures the BLAS peak before its steps; the share divides the median step's GFLOP/s by
    the best of those peaks over every round and contender."""
    replies = {"blas": iter([100.0, 50.0, 120.0, 90.0]), "train": iter([2.0, 1.0, 2.0, 1.0])}   # 2 rounds x 2 contenders

    class FakeWorker:
        def __init__(self, backend_name, env):
            pass

        def ask(self, op, **request):
            if op == "blas":
                return {"gflops": next(replies["blas"])}
            return {"seconds": next(replies["train"])} if op == "train" else {}

        def close(self):
            pass
    monkeypatch.setattr(bench, "WorkerProcess", FakeWorker)
    results = {}
    bench.bench_training({"numba": ("numba", {}), "torch": ("torch", {})}, rounds=2, steps=1, results=results)
    flops = bench.training_flops_per_step(bench.REFERENCE) / 1e9
    training = results["training"]
    assert training["blas_peak_gflops"] == 120.0 and training["blas_rounds_gflops"] == [100.0, 120.0, 50.0, 90.0]
    numba = training["contenders"]["numba"]
    assert numba["rounds_seconds"] == [2.0, 2.0] and numba["rounds_blas_peak_gflops"] == [100.0, 120.0]
    assert numba["share_of_blas_peak"] == pytest.approx(flops / 2.0 / 120.0)


@pytest.mark.parametrize("backend_name", ["numba", "numpy", "torch"])
def test_each_training_step_runs_and_splitting_the_batch_keeps_the_loss(backend_name, monkeypatch):
    """The benchmark's own step functions, in this process on a tiny GPT: each library's step with the
    batch split across 2 threads gives the loss of its step without the split (after 3 warm-up steps
    from the same start: same maths, other rounding)."""
    if backend_name == "torch":
        torch = pytest.importorskip("torch")
        threads_before = torch.get_num_threads()
    from numpy_transformer import backend
    cfg = dict(num_layers=1, width=16, num_heads=2, T=8, batch=4, vocab=11)
    losses = []
    try:
        with backend.use_backend(backend.get_backend()):      # a worker switches the process's backend
            for split in ("1", "2"):
                monkeypatch.setenv(bench.SPLIT, split)
                worker = bench.Worker(backend_name)
                losses.append(worker.setup_train({"cfg": cfg})["loss"])
                assert worker.train({"steps": 2})["seconds"] > 0
    finally:
        if backend_name == "torch":
            torch.set_num_threads(threads_before)             # the split set one thread per Python thread
    assert np.isfinite(losses[0])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
