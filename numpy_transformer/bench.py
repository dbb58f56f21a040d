"""Benchmark: Numba kernels vs the NumPy reference vs PyTorch eager, in one run, as ratios.

    python -m numpy_transformer.bench                 # full run, table on stdout, bench_results.json
    python -m numpy_transformer.bench --quick         # a few minutes: fewer sizes, rounds and variants
    python -m numpy_transformer.bench --json out.json

Every contender runs in its own worker process (its own threads and settings: Numba as shipped, with
threads sharing each batch; Numba sharing out each operation instead, with one of its settings undone
or its kernels on one thread; NumPy; PyTorch with OpenMP's waiting policies, or the batch split
across threads as Numba's is).
Contenders take turns, round after round, so a slow moment of this shared machine hits every
contender alike; each figure is the median over rounds (for the training step, of each round's
median step). For attention, persistent workers answer
the same request in turn; for the training step, each round starts each contender in a fresh
process that runs alone (an idle process with ACTIVE OpenMP waiting spins forever and would slow
the others).

Measured:
  1. attention forward and forward+backward, B=16, H=4, T in {64..512}, D in {16, 32, 64}, float32;
  2. a training step (forward, backward, AdamW) of the reference GPT (4 layers, width 128, 4 heads,
     T=128, batch 16, vocabulary 65, float32), tokens/s, and its GFLOP/s as a share of the float32
     BLAS peak: the best of the peaks that every worker measured before its steps, in the same rounds;
  3. peak memory of attention forward+backward at T=1024 (no weights kept), each backend alone;
  4. cold compile time of every kernel (empty NUMBA_CACHE_DIR) and load time from that cache;
  5. KV-cache generation speedup (numpy_transformer.generate).
PyTorch is optional: without it its rows say "not installed".
"""
import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

NEW_TOKENS = 60         # generated per timing in the KV-cache comparison (prompt of 8)
REFERENCE = dict(num_layers=4, width=128, num_heads=4, T=128, batch=16, vocab=65)
SPLIT = "NUMPY_TRANSFORMER_DATA_PARALLEL"    # threads sharing each batch (parallel.py); the torch worker reads it too
EVERY_CORE = str(os.cpu_count() or 1)
CONTENDERS = {                 # name -> (backend, extra environment); "family, variant"
    "numba": ("numba", {}),                                             # as shipped: one thread per core shares the batch
    "numba, no batch split": ("numba", {SPLIT: "1"}),                   # kernels and BLAS share out each operation
    "numba, no batch split, kernels on 1 thread": ("numba", {SPLIT: "1", "NUMBA_NUM_THREADS": "1"}),   # BLAS only
    "numba, no batch split, OpenBLAS threads poll": ("numba", {SPLIT: "1", "OPENBLAS_THREAD_TIMEOUT": "28"}),
    "numba, malloc returns freed memory": ("numba", {"NUMPY_TRANSFORMER_KEEP_FREED_MEMORY": "0"}),   # glibc default
    "numpy": ("numpy", {}),                                             # as shipped: the reference, no threads of its own
    "numpy, batch split": ("numpy", {SPLIT: EVERY_CORE}),
    "numpy, 1 BLAS thread": ("numpy", {"OPENBLAS_NUM_THREADS": "1"}),
    "numpy, OpenBLAS threads poll": ("numpy", {"OPENBLAS_THREAD_TIMEOUT": "28"}),
    "torch": ("torch", {}),                                             # as shipped: OpenMP's own default
    "torch, OMP passive wait": ("torch", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "torch, OMP active wait": ("torch", {"OMP_WAIT_POLICY": "ACTIVE"}),
    "torch, 1 thread": ("torch", {"OMP_NUM_THREADS": "1"}),
    "torch, batch split": ("torch", {SPLIT: EVERY_CORE}),               # the same split, with autograd
}


# ==== worker side: one process per contender, answering JSON requests on stdin ====================

def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def make_torch_gpt(cfg):
    """The reference GPT written with torch modules: pre-LN blocks, GELU (tanh), tied embedding."""
    import torch
    F = torch.nn.functional

    class Block(torch.nn.Module):
        def __init__(self, C, H):
            super().__init__()
            self.H = H
            self.norm1, self.norm2 = torch.nn.LayerNorm(C), torch.nn.LayerNorm(C)
            self.qkv, self.proj = torch.nn.Linear(C, 3 * C), torch.nn.Linear(C, C)
            self.fc1, self.fc2 = torch.nn.Linear(C, 4 * C), torch.nn.Linear(4 * C, C)

        def forward(self, x):
            B, T, C = x.shape
            q, k, v = self.qkv(self.norm1(x)).split(C, dim=-1)
            heads = [t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v)]
            a = F.scaled_dot_product_attention(*heads, is_causal=True)
            x = x + self.proj(a.transpose(1, 2).reshape(B, T, C))
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x)), approximate="tanh"))

    class TorchGPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            C = cfg["width"]
            self.tokens = torch.nn.Embedding(cfg["vocab"], C)
            self.positions = torch.nn.Embedding(cfg["T"], C)
            self.blocks = torch.nn.ModuleList(Block(C, cfg["num_heads"]) for _ in range(cfg["num_layers"]))
            self.norm = torch.nn.LayerNorm(C)

        def forward(self, ids, targets):
            x = self.tokens(ids) + self.positions.weight[: ids.shape[1]]
            for block in self.blocks:
                x = block(x)
            logits = self.norm(x) @ self.tokens.weight.T
            return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    return TorchGPT()


def torch_train_step(torch, cfg, ids, targets, shards):
    """One training step of the reference GPT in torch eager, as a function. shards > 1: that many
    threads share each batch, as numpy_transformer's parallel.py does (torch on one thread each;
    autograd adds the threads' gradients into the same .grad, each loss weighted by its share)."""
    model = make_torch_gpt(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tids, ttargets = torch.from_numpy(ids), torch.from_numpy(targets)
    if shards <= 1:
        def step():
            optimizer.zero_grad(set_to_none=True)
            loss = model(tids, ttargets)
            loss.backward()
            optimizer.step()
            return float(loss.detach())
        return step
    from concurrent.futures import ThreadPoolExecutor
    torch.set_num_threads(1)
    pool = ThreadPoolExecutor(shards - 1)
    rows = len(ids)
    bounds = [part * rows // shards for part in range(shards + 1)]
    parts = [(tids[a:b], ttargets[a:b], (b - a) / rows) for a, b in zip(bounds, bounds[1:])]

    def shard(part):
        part_ids, part_targets, weight = part
        loss = model(part_ids, part_targets) * weight
        loss.backward()
        return float(loss.detach())

    def step():
        optimizer.zero_grad(set_to_none=True)
        waiting = [pool.submit(shard, part) for part in parts[1:]]
        loss = shard(parts[0]) + sum(future.result() for future in waiting)
        optimizer.step()
        return loss
    return step


class MinimalAdamW:
    """AdamW for the benchmark when numpy_transformer.optim is absent (decay on matrices only)."""

    def __init__(self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        self.params, self.grads = model.parameters(), model.grads()
        self.m = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.v = {n: np.zeros_like(p) for n, p in self.params.items()}
        self.lr, self.b1, self.b2, self.eps, self.wd, self.t = lr, beta1, beta2, eps, weight_decay, 0

    def step(self):
        self.t += 1
        for name, p in self.params.items():
            g, m, v = self.grads[name], self.m[name], self.v[name]
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            m_hat = m / (1 - self.b1 ** self.t)
            v_hat = v / (1 - self.b2 ** self.t)
            if p.ndim >= 2:
                p -= self.lr * self.wd * p
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class Worker:
    """Holds one contender's state (models, inputs) between requests."""

    def __init__(self, backend_name):
        self.backend_name = backend_name
        self.train_state = None
        if backend_name == "torch":
            import torch
            self.torch = torch
            torch.manual_seed(0)
        else:
            from numpy_transformer import backend
            backend.set_backend(backend_name)

    def info(self, _request):
        out = {"backend": self.backend_name, "pid": os.getpid()}
        out.update({name: os.environ.get(name) for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OPENBLAS_THREAD_TIMEOUT",
                                                            "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")})
        if self.backend_name == "torch":
            out["torch"] = self.torch.__version__
            out["threads"] = self.torch.get_num_threads()
        else:
            import numba
            from numpy_transformer.kernels import threads
            out["numba"] = numba.__version__
            out["threads"] = threads.get_num_threads()     # the kernels' threads (kernels/threads.py)
        return out

    # --- attention ---
    def attention(self, request):
        """Time `reps` calls of attention forward (or forward+backward) on fresh-seeded inputs."""
        B, H, T, D, mode, reps = (request[k] for k in ("B", "H", "T", "D", "mode", "reps"))
        rng = np.random.default_rng(0)
        q, k, v, dout = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4))
        if self.backend_name == "torch":
            torch = self.torch
            tq, tk, tv, tdout = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v, dout))

            def run():
                out = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
                if mode == "fwdbwd":
                    out.backward(tdout)
        else:
            from numpy_transformer import backend
            from numpy_transformer.layers.attention import attention_backward, attention_forward
            forward, backward = backend.dispatch(attention_forward), backend.dispatch(attention_backward)

            def run():
                out, cache = forward(q, k, v, causal=True, need_weights=False)
                if mode == "fwdbwd":
                    backward(dout, cache)
        run()                                            # warm-up (and compile, from the cache)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return {"seconds": min(times)}

    # --- training step ---
    def setup_train(self, request):
        cfg = request["cfg"]
        rng = np.random.default_rng(0)
        data = rng.integers(0, cfg["vocab"], (cfg["batch"], cfg["T"] + 1))
        ids, targets = data[:, :-1], data[:, 1:]
        shards = int(os.environ.get(SPLIT, "0"))       # 0: each library's own default
        if self.backend_name == "torch":
            step = torch_train_step(self.torch, cfg, ids, targets, shards)
        else:
            from numpy_transformer.models import GPT, GPTConfig
            from numpy_transformer.models.common import keep_attention_weights
            model = GPT(GPTConfig(vocab_size=cfg["vocab"], max_len=cfg["T"], width=cfg["width"],
                                  num_heads=cfg["num_heads"], num_layers=cfg["num_layers"], dtype="float32"))
            keep_attention_weights(model, False)          # training needs no attention maps
            try:
                from numpy_transformer.optim import AdamW
                optimizer = AdamW(model, lr=1e-3)
            except ImportError:
                optimizer = MinimalAdamW(model, lr=1e-3)
            from numpy_transformer.parallel import DataParallel, default_shards
            parallel = DataParallel(model, default_shards(cfg["batch"]))   # as train() does
            batch = {"ids": ids, "targets": targets}

            def loss_fn(replica, part, rng):
                _, loss = replica.forward(part["ids"], part["targets"])
                return float(loss), part["targets"].size

            def step():
                model.zero_grad()
                loss, _ = parallel.loss_and_backward(loss_fn, batch)
                optimizer.step()
                return loss
        self.train_state = step
        losses = [step() for _ in range(3)]              # warm-up
        return {"loss": losses[-1]}

    def train(self, request):
        """Time each of `steps` steps; the round's figure is their median: one step slowed by this
        shared machine (or a garbage collection) does not move it, as it would move a mean."""
        step = self.train_state
        times = []
        for _ in range(request["steps"]):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return {"seconds": statistics.median(times)}

    # --- BLAS peak ---
    def blas(self, request):
        """Best float32 GFLOP/s of an n x n matmul into a preallocated output, with BLAS on every core
        (also in a worker whose settings keep BLAS to one thread: this measures the machine, not them)."""
        n = request["n"]
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), dtype=np.float32)
        best = math.inf
        import threadpoolctl
        with threadpoolctl.threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
            for _ in range(request["reps"]):
                start = time.perf_counter()
                np.matmul(a, b, out=c)
                best = min(best, time.perf_counter() - start)
        return {"gflops": 2 * n ** 3 / best / 1e9}

    def tiled_matmul(self, request):
        """GFLOP/s of the teaching kernel kernels.matmul.matmul_tiled on the same n x n problem."""
        from numpy_transformer.kernels.matmul import matmul_tiled
        n = request["n"]
        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((n, n)).astype(np.float32), rng.standard_normal((n, n)).astype(np.float32)
        matmul_tiled(a, b)
        best = math.inf
        for _ in range(request["reps"]):
            start = time.perf_counter()
            matmul_tiled(a, b)
            best = min(best, time.perf_counter() - start)
        return {"gflops": 2 * n ** 3 / best / 1e9}


def worker_main(backend_name):
    worker = Worker(backend_name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        reply = getattr(worker, request["op"])(request)
        print(json.dumps(reply), flush=True)


class WorkerProcess:
    """The coordinator's handle on one worker: send a request, read one JSON line back."""

    def __init__(self, backend_name, extra_env):
        from numpy_transformer import runtime
        env = {k: v for k, v in os.environ.items() if k not in runtime.SET_HERE}   # as you started the benchmark
        env.update(extra_env)                            # the worker re-applies the package's settings around these
        self.proc = subprocess.Popen([sys.executable, "-m", "numpy_transformer.bench", "--worker", backend_name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        self.read()

    def read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker {self.proc.args} died (exit code {self.proc.poll()})")
        return json.loads(line)

    def ask(self, op, **request):
        self.proc.stdin.write(json.dumps(dict(request, op=op)) + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)


# ==== coordinator side ==============================================================================

def interleaved(workers, rounds, op, **request):
    """Ask every worker the same request, round after round; {name: [replies]}."""
    replies = {name: [] for name in workers}
    for _ in range(rounds):
        for name, worker in workers.items():
            replies[name].append(worker.ask(op, **request))
    return replies


def median_of(replies, key):
    return statistics.median(reply[key] for reply in replies)


def training_flops_per_step(cfg):
    """Matmul FLOPs of one step: 6 per weight per token (forward 2, backward 4), plus attention's
    q k^T and weights v, 2 T C each per token and layer forward (full T x T), times 3 with backward."""
    C, L, T, V = cfg["width"], cfg["num_layers"], cfg["T"], cfg["vocab"]
    tokens = cfg["batch"] * T
    weights = L * (4 * C * C + 2 * C * 4 * C) + C * V
    attention = L * 2 * (2 * T * C)
    return tokens * (6 * weights + 3 * attention)


def bench_attention(workers, sizes, rounds, reps, results):
    rows = []
    for T in sizes["T"]:
        for D in sizes["D"]:
            for mode in ("fwd", "fwdbwd"):
                replies = interleaved(workers, rounds, "attention", B=16, H=4, T=T, D=D, mode=mode, reps=reps)
                row = {"T": T, "D": D, "mode": mode}
                row.update({name: median_of(r, "seconds") for name, r in replies.items()})
                rows.append(row)
                print(f"  attention T={T:4d} D={D:3d} {mode:7s} "
                      + "  ".join(f"{n} {row[n] * 1e3:8.2f} ms" for n in workers), flush=True)
    results["attention"] = rows


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def bench_training(contenders, rounds, steps, results):
    """Each round starts every contender in a fresh process, ALONE on the machine, in turn.

    Alone, because an idle process with OMP_WAIT_POLICY=ACTIVE keeps its OpenMP threads spinning
    forever and would slow whoever runs beside it. Every process first measures the float32 BLAS
    peak of that moment (n = 1024 matmul into a preallocated output, BLAS on every core); the run's
    BLAS peak is the best of them. The NumPy process also times the teaching tiled matmul.
    """
    cfg = REFERENCE
    per_step = {name: [] for name in contenders}
    round_peaks = {name: [] for name in contenders}  # each round's BLAS peak, measured by the contender's process:
                                                     # on this shared machine from ~100 (one core's worth) to ~200
    tiled = []
    for _ in range(rounds):
        for name, (backend_name, env) in contenders.items():
            worker = WorkerProcess(backend_name, env)
            try:
                round_peaks[name].append(worker.ask("blas", n=1024, reps=5)["gflops"])   # before its threads exist
                worker.ask("setup_train", cfg=cfg)
                per_step[name].append(worker.ask("train", steps=steps)["seconds"])
                if name == "numpy":
                    tiled.append(worker.ask("tiled_matmul", n=1024, reps=3)["gflops"])
            finally:
                worker.close()
    tokens = cfg["batch"] * cfg["T"]
    flops = training_flops_per_step(cfg)
    blas = [gflops for values in round_peaks.values() for gflops in values]
    peak = max(blas)                                # a peak: the best moment of the run
    rows = {}
    for name, times in per_step.items():
        seconds = statistics.median(times)
        rows[name] = {"seconds_per_step": seconds, "tokens_per_s": tokens / seconds,
                      "gflops": flops / seconds / 1e9, "share_of_blas_peak": flops / seconds / 1e9 / peak,
                      "rounds_seconds": times, "rounds_blas_peak_gflops": round_peaks[name]}
        print(f"  training step {name:38s} {tokens / seconds:9.0f} tokens/s  {flops / seconds / 1e9:6.1f} GFLOP/s",
              flush=True)
    results["training"] = {"config": cfg, "flops_per_step": flops, "blas_peak_gflops": peak,
                           "blas_rounds_gflops": blas, "contenders": rows}
    if tiled:
        results["tiled_matmul_gflops"] = max(tiled)
        results["tiled_matmul_share_of_blas"] = max(tiled) / peak


MEMORY_SCRIPT = r"""
import json, resource, sys, tracemalloc
import numpy as np
from numpy_transformer import backend
from numpy_transformer.layers.attention import attention_backward, attention_forward
backend.set_backend(sys.argv[1])
B, H, T, D = 16, 4, 1024, 32
rng = np.random.default_rng(0)
q, k, v, dout = (rng.standard_normal((B, H, T, D)).astype(np.float32) for _ in range(4))
forward, backward = backend.dispatch(attention_forward), backend.dispatch(attention_backward)
out, cache = forward(q[:, :, :8], k[:, :, :8], v[:, :, :8], causal=True, need_weights=False)   # load kernels
backward(dout[:, :, :8], cache)
del out, cache
tracemalloc.start()
out, cache = forward(q, k, v, causal=True, need_weights=False)
grads = backward(dout, cache)
current, peak = tracemalloc.get_traced_memory()
print(json.dumps({"peak_bytes": peak, "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def bench_memory(results, names):
    B, H, T = 16, 4, 1024
    one_tt = B * H * T * T * 4
    rows = {}
    for name in names:
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, name], capture_output=True, text=True, check=True)
        row = json.loads(out.stdout)
        row["peak_in_TxT_buffers"] = row["peak_bytes"] / one_tt
        rows[name] = row
        print(f"  attention memory T=1024 {name:6s} peak {row['peak_bytes'] / 2**20:8.1f} MiB "
              f"= {row['peak_in_TxT_buffers']:.2f} (B,H,T,T) float32 buffers", flush=True)
    results["attention_memory"] = {"B": B, "H": H, "T": T, "D": 32, "one_TxT_buffer_bytes": one_tt, "backends": rows}


COMPILE_SCRIPT = r"""
import json, time
start = time.perf_counter()
import numpy as np
from numpy_transformer.kernels import attention, embedding, ffn, layernorm, loss, matmul, optim
imported = time.perf_counter()
seconds = {}
for dtype in (np.float32, np.float64):         # float32: what training compiles; float64: gradient checks, tests
    begin = time.perf_counter()
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 3, 2, 4)).astype(dtype).transpose(0, 2, 1, 3)   # (B, H, T, D) as the model passes it
    out, cache = attention.attention_forward(q, q, q, causal=True, need_weights=True)
    attention.attention_backward(out, cache)
    x = rng.standard_normal((2, 3, 4)).astype(dtype)
    w1, w2 = rng.standard_normal((4, 8)).astype(dtype), rng.standard_normal((8, 4)).astype(dtype)
    y, c = ffn.ffn_forward(x, w1, w1[0], w2, w2[0], "gelu_tanh")
    ffn.ffn_backward(y, c)
    y, c = layernorm.layernorm_forward(x, x[0, 0], x[0, 0])
    layernorm.layernorm_backward(y, c)
    value, c = loss.cross_entropy_forward(x, np.zeros((2, 3), dtype=np.int64))
    loss.cross_entropy_backward(1.0, c)
    embedding.embedding_backward(x, (np.zeros((2, 3), dtype=np.int64), 5))
    matmul.matmul_tiled(w1, w2)
    optim.adam_update(w1.copy(), w1, w1.copy(), w1 * w1, 1e-3, 0.9, 0.999, 1e-8, 1, 0.01, True)
    optim.add_scaled(w1.copy(), w1, 0.5)
    seconds[np.dtype(dtype).name] = time.perf_counter() - begin
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "compile_or_load_s": done - imported, "by_dtype_s": seconds}))
"""


def bench_compile(results):
    with tempfile.TemporaryDirectory() as cache_dir:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
        runs = []
        for _ in range(2):                              # cold, then from the cache just written
            out = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], env=env, capture_output=True, text=True,
                                 check=True)
            runs.append(json.loads(out.stdout))
    results["compile"] = {"cold": runs[0], "cached": runs[1],
                          "note": "every kernel (attention, FFN, LayerNorm, loss, embedding, Adam, teaching matmul) in float32 and float64"}
    cold = runs[0]["by_dtype_s"]
    print(f"  compile: cold {runs[0]['compile_or_load_s']:.1f} s (float32 {cold['float32']:.1f} s, float64 "
          f"{cold['float64']:.1f} s), cached load {runs[1]['compile_or_load_s']:.2f} s", flush=True)


def bench_generation(results, rounds):
    try:
        from numpy_transformer.generate import generate
    except ImportError:
        results["generation"] = "numpy_transformer.generate not available"
        return
    from numpy_transformer import backend
    from numpy_transformer.models import GPT, GPTConfig
    cfg = REFERENCE
    model = GPT(GPTConfig(vocab_size=cfg["vocab"], max_len=cfg["T"], width=cfg["width"], num_heads=cfg["num_heads"],
                          num_layers=cfg["num_layers"], dtype="float32"))
    prompt = np.random.default_rng(0).integers(0, cfg["vocab"], (1, 8))
    rows = {}
    for name in ("numba", "numpy"):
        with backend.use_backend(name):
            times = {True: [], False: []}
            generate(model, prompt, 4, rng=np.random.default_rng(0))
            for _ in range(rounds):
                for use_cache in (True, False):
                    start = time.perf_counter()
                    generate(model, prompt, NEW_TOKENS, rng=np.random.default_rng(0), use_cache=use_cache)
                    times[use_cache].append(time.perf_counter() - start)
        with_cache, without = statistics.median(times[True]), statistics.median(times[False])
        rows[name] = {"tokens_per_s_with_cache": NEW_TOKENS / with_cache, "tokens_per_s_without": NEW_TOKENS / without,
                      "speedup": without / with_cache}
        print(f"  generation {name}: {NEW_TOKENS / with_cache:7.0f} tokens/s with KV cache, {NEW_TOKENS / without:7.0f} without "
              f"({without / with_cache:.1f}x)", flush=True)
    results["generation"] = rows


def best_of_families(training):
    """{family: the fastest of its variants (with its name)}, family = the name before the comma."""
    best = {}
    for name, row in training.items():
        family = name.split(",")[0]
        if family not in best or row["tokens_per_s"] > best[family]["tokens_per_s"]:
            best[family] = dict(row, name=name)
    return best


def verdicts(results):
    """Each target of the issue with its measured figure, met or not."""
    out = []
    training = results.get("training", {}).get("contenders", {})
    best = best_of_families(training)
    if "numba" in best:
        shipped = dict(training["numba"], name="numba") if "numba" in training else best["numba"]   # as installed
        numba = shipped["tokens_per_s"]
        out.append((f"training step: Numba as shipped >= 1.3x NumPy (its best: {best['numpy']['name']!r})",
                    numba / best["numpy"]["tokens_per_s"], 1.3))
        if "torch" in best:
            out.append((f"training step: Numba as shipped >= 1.0x torch eager (its best: {best['torch']['name']!r})",
                        numba / best["torch"]["tokens_per_s"], 1.0))
        out.append(("training step: Numba as shipped >= 55% of BLAS peak (in %)", 100 * shipped["share_of_blas_peak"],
                    55.0))
        # threading: each way of using the cores must beat the one it replaces
        for faster, slower, label in (
                ("numba", "numba, no batch split", "threads sharing the batch"),
                ("numba, no batch split", "numba, no batch split, kernels on 1 thread", "kernels on every core, beside BLAS"),
                ("numba, no batch split", "numba, no batch split, OpenBLAS threads poll", "OpenBLAS threads sleep"),
                ("numba", "numba, malloc returns freed memory", "freed memory kept")):
            if faster in training and slower in training:
                out.append((f"threading and settings: {faster!r} ({label}) / {slower!r} >= 1",
                            training[faster]["tokens_per_s"] / training[slower]["tokens_per_s"], 1.0))
    rows = [r for r in results.get("attention", []) if r["mode"] == "fwdbwd"]
    if rows:
        out.append(("attention fwd+bwd: Numba >= 2x NumPy (geomean)", geomean(r["numpy"] / r["numba"] for r in rows), 2.0))
        if "torch" in rows[0]:
            out.append(("attention fwd+bwd: Numba >= torch SDPA (geomean)",
                        geomean(r["torch"] / r["numba"] for r in rows), 1.0))
    memory = results.get("attention_memory", {}).get("backends", {})
    if "numba" in memory:
        out.append(("attention T=1024 without weights: < 1 (B,H,T,T) buffer (Numba peak, in buffers)",
                    memory["numba"]["peak_in_TxT_buffers"], -1.0))
    compile_ = results.get("compile")
    if compile_:
        out.append(("cold compile of all kernels < 30 s (seconds)", compile_["cold"]["compile_or_load_s"], -30.0))
        out.append(("  of which float32 only, what a training run compiles (seconds)",
                    compile_["cold"]["by_dtype_s"]["float32"], -30.0))
        out.append(("cached load of all kernels < 2 s (seconds)", compile_["cached"]["compile_or_load_s"], -2.0))
    if "tiled_matmul_share_of_blas" in results:
        out.append(("teaching tiled matmul >= 0.4x BLAS", results["tiled_matmul_share_of_blas"], 0.4))
    # a negative target means "at most |target|"
    return [{"target": name, "measured": value, "met": bool(value >= goal if goal > 0 else value < -goal)}
            for name, value, goal in out]


def print_table(results):
    print("\n== attention, B=16 H=4 causal float32, median ms; the ratios say how many times faster Numba is ==")
    names = [n for n in ("numba", "numpy", "torch") if results["attention"] and n in results["attention"][0]]
    print(f"{'T':>5} {'D':>4} {'mode':7} " + " ".join(f"{n:>10}" for n in names) + "  numba vs numpy  numba vs torch")
    for r in results["attention"]:
        vs_torch = f"{r['torch'] / r['numba']:13.2f}x" if "torch" in r else "  not installed"
        print(f"{r['T']:5d} {r['D']:4d} {r['mode']:7} " + " ".join(f"{r[n] * 1e3:10.2f}" for n in names)
              + f"  {r['numpy'] / r['numba']:13.2f}x {vs_torch}")
    training = results["training"]
    print(f"\n== training step, reference GPT, float32 (BLAS peak {training['blas_peak_gflops']:.0f} GFLOP/s, the best "
          f"of {len(training['blas_rounds_gflops'])} measurements, one per process) ==")
    base = best_of_families(training["contenders"])["numpy"]["tokens_per_s"]
    for name, row in training["contenders"].items():
        print(f"{name:38s} {row['tokens_per_s']:9.0f} tokens/s  {row['tokens_per_s'] / base:5.2f}x best NumPy  "
              f"{row['gflops']:6.1f} GFLOP/s  {100 * row['share_of_blas_peak']:5.1f}% of peak")
    if "tiled_matmul_gflops" in results:
        print(f"teaching tiled matmul: {results['tiled_matmul_gflops']:.1f} GFLOP/s = "
              f"{results['tiled_matmul_share_of_blas']:.2f}x BLAS")
    print("\n== targets ==" + ("  (--quick: fewer sizes and rounds, indicative only)" if results.get("quick") else ""))
    for v in results["verdicts"]:
        print(f"{'MET ' if v['met'] else 'NOT '} {v['target']:78s} {v['measured']:.2f}")


PARTS = ("attention", "training", "memory", "compile", "generation")


def main(argv=None):
    from .cli import OneLineParser, positive_int      # a bad command line: one line on stderr, exit code 2
    parser = OneLineParser(prog="python -m numpy_transformer.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and rounds")
    parser.add_argument("--json", default="bench_results.json", help="where to write the results")
    parser.add_argument("--rounds", type=positive_int, default=None, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: " + ",".join(PARTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main(args.worker)
    try:                                             # the workers read it: a bad value is one line here,
        from .parallel import default_shards         # not a traceback from inside a worker
        default_shards(1)
    except ValueError as err:
        parser.error(str(err))
    skip = set(filter(None, args.skip.split(",")))
    unknown = sorted(skip - set(PARTS))
    if unknown:                                      # a typo must not silently run a 30-minute benchmark
        parser.error(f"--skip: unknown part {', '.join(map(repr, unknown))}; the parts are {','.join(PARTS)}")
    rounds = args.rounds or (3 if args.quick else 7)
    sizes = {"T": [64, 256], "D": [16, 64]} if args.quick else {"T": [64, 128, 256, 512], "D": [16, 32, 64]}
    have_torch = torch_available()
    results = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "numpy": np.__version__,
                           "torch": have_torch},
               "rounds": rounds, "quick": args.quick}
    names = [n for n in CONTENDERS if have_torch or CONTENDERS[n][0] != "torch"]
    if args.quick:                                   # the default settings and the threading proof only
        names = [n for n in names if "," not in n or n.startswith("numba")]
    if not have_torch:
        print("torch not installed: its rows are skipped (pip install -r requirements-torch.txt)")
    if "attention" not in skip:                        # persistent workers, asked in turn
        workers = {}
        try:
            for name in [n for n in ("numba", "numpy", "torch") if n in names]:
                backend_name, env = CONTENDERS[name]
                workers[name] = WorkerProcess(backend_name, env)
            results["workers"] = {name: w.ask("info") for name, w in workers.items()}
            bench_attention(workers, sizes, rounds, 2 if args.quick else 3, results)
        finally:
            for worker in workers.values():
                worker.close()
    if "training" not in skip:
        bench_training({n: CONTENDERS[n] for n in names}, rounds, 5 if args.quick else 12, results)
    if "memory" not in skip:
        bench_memory(results, ["numba", "numpy"])
    if "compile" not in skip:
        bench_compile(results)
    if "generation" not in skip:
        bench_generation(results, 3 if args.quick else 5)
    results["verdicts"] = verdicts(results)
    if "attention" in results and "training" in results:
        print_table(results)
    else:
        for v in results["verdicts"]:
            print(f"{'MET ' if v['met'] else 'NOT '} {v['target']:78s} {v['measured']:.2f}")
    with open(args.json, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
