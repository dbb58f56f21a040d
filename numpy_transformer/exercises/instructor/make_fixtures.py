"""Build the grader's fixtures from the solutions: inputs, expected outputs, and the outputs of
known mistakes, as plain numbers in numpy_transformer/exercises/fixtures/NN.npz.

    python -m numpy_transformer.exercises.instructor.make_fixtures

Run it after changing a solution or a case. The student copy ships the .npz files (numbers only) but
not this module, which computes the mistakes with solution code.
"""
import math
from pathlib import Path

import numpy as np

from ... import backend
from ...layers.attention import attention_forward
from ...layers.softmax import softmax_forward
from ..cases import RUNNERS

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures"


def make_inputs(number, rng):
    """The inputs of each exercise's cases: small, random, non-trivial, float64."""
    n = rng.standard_normal
    if number == "01":
        return {"x": n((2, 3, 4)), "weight": n((4, 5)), "bias": n(5), "dy": n((2, 3, 5))}
    if number == "02":
        x = n((3, 6)) * 2
        x[np.abs(x) < 0.05] = 0.3                            # away from ReLU's kink
        return {"x": x, "dy": n((3, 6))}
    if number == "03":
        return {"x": n((3, 5)) * 2, "mask": np.array([False, True, False, False, True]), "dp": n((3, 5))}
    if number == "04":
        return {"logits": n((2, 3, 5)) * 2, "targets": np.array([[1, 4, -100], [0, 2, 3]])}
    if number == "05":
        return {"ids": np.array([[1, 3, 1, 1], [0, 3, 5, 1]]), "weight": n((6, 4)), "dout": n((2, 4, 4))}
    if number == "06":
        return {"size": np.array([12, 8])}
    if number == "07":
        return {"x": n((2, 3, 6)) * 2 + 1, "gamma": 1 + 0.3 * n(6), "beta": n(6), "dy": n((2, 3, 6))}
    if number == "08":
        padding = np.zeros((2, 5), dtype=bool)
        padding[1, 3:] = True
        return {"q": n((2, 2, 5, 3)), "k": n((2, 2, 5, 3)), "v": n((2, 2, 5, 3)), "padding": padding}
    if number == "09":
        q, k, v = n((2, 2, 4, 3)), n((2, 2, 4, 3)), n((2, 2, 4, 3))
        out, cache = attention_forward(q, k, v, causal=True)
        return {"q": q, "k": k, "v": v, "out": out, "lse": cache.lse, "weights": cache.weights,
                "scale": np.array(cache.scale), "dout": n((2, 2, 4, 3))}
    if number == "10":
        return {"x": n((2, 3, 6)), "num_heads": np.array(3), "heads": n((2, 3, 4, 2))}
    if number == "11":
        return {"x": n((2, 3, 4)), "weight": n((4, 4)) * 0.5, "bias": n(4) * 0.3, "gamma": 1 + 0.3 * n(4),
                "beta": n(4) * 0.3, "dy": n((2, 3, 4))}
    if number == "12":
        return {"weight": n((3, 2)), "bias": n(2), "weight_grads": n((3, 3, 2)), "bias_grads": n((3, 2))}
    if number == "13":
        return {"logits": np.array([[2.0, 1.0, 0.5, 3.0, -1.0, 0.0, 1.5, 2.5],
                                    [0.1, 0.2, 4.0, 0.3, 0.0, -2.0, 3.5, 1.0]])}
    if number == "14":
        return {"ids": rng.integers(0, 11, (2, 7))}
    raise ValueError(f"no inputs defined for exercise {number}")


def softmax_then_zero(scores, mask):
    """The mistake: softmax over every entry, masked ones zeroed afterwards (rows no longer sum to 1)."""
    weights, _ = softmax_forward(scores)
    return np.where(mask, 0.0, weights)


def make_mistakes(number, fx, expected):
    """{mistake name: {output name: array}}: what the named mistakes produce on these inputs."""
    if number == "03":
        p_all, _ = softmax_forward(fx["in_x"])
        return {"mask applied after the softmax": {"masked p": np.where(fx["in_mask"], 0.0, p_all)}}
    if number == "05":
        ids, dout = fx["in_ids"].reshape(-1), fx["in_dout"].reshape(-1, fx["in_dout"].shape[-1])
        overwritten = np.zeros_like(fx["in_weight"])
        overwritten[ids] = dout                               # buffered: the last occurrence wins
        return {"repeated ids overwritten instead of accumulated": {"dweight": overwritten}}
    if number == "06":
        swapped = expected["table"].copy()
        swapped[:, 0::2], swapped[:, 1::2] = expected["table"][:, 1::2], expected["table"][:, 0::2]
        return {"sin and cos swapped": {"table": swapped}}
    if number == "07":
        x, C = fx["in_x"], fx["in_x"].shape[-1]
        mu = x.mean(-1, keepdims=True)
        var_unbiased = ((x - mu) ** 2).sum(-1, keepdims=True) / (C - 1)
        y = (x - mu) / np.sqrt(var_unbiased + 1e-5) * fx["in_gamma"] + fx["in_beta"]
        return {"unbiased instead of biased variance": {"y": y}}
    if number == "08":
        q, k, v = fx["in_q"], fx["in_k"], fx["in_v"]
        D = q.shape[-1]
        no_scale, no_scale_cache = attention_forward(q * math.sqrt(D), k, v)   # scores without 1/sqrt(D)
        causal_no_scale, _ = attention_forward(q * math.sqrt(D), k, v, causal=True)
        T = q.shape[2]
        future = np.triu(np.ones((T, T), dtype=bool), 1)
        scores = q @ k.swapaxes(-1, -2) / math.sqrt(D)
        weights_after = softmax_then_zero(scores, future)
        padding = fx["in_padding"][:, None, None, :]
        padded_after = softmax_then_zero(scores, padding)
        return {
            "missing 1/sqrt(d_k)": {"out": no_scale, "weights": no_scale_cache.weights,
                                    "causal out": causal_no_scale},
            "mask applied after the softmax": {"causal weights": weights_after, "causal out": weights_after @ v,
                                               "padded weights": padded_after, "padded out": padded_after @ v},
        }
    if number == "12":
        return {"weight decay added to the gradient (Adam + L2) instead of decoupled": adam_variant(fx, "l2"),
                "no bias correction": adam_variant(fx, "no correction")}
    if number == "13":
        logits = fx["in_logits"]
        multiplied = softmax_forward(logits * 0.5)[0]
        return {"temperature multiplied instead of divided": {"temperature 0.5": multiplied},
                "top-p drops the token that crosses p": {"top-p 0.7": top_p_strict(logits, 0.7)}}
    return {}


def adam_variant(fx, kind, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.5):
    """Three Adam steps done wrong in one known way, written out directly."""
    params = {"weight": fx["in_weight"].copy(), "bias": fx["in_bias"].copy()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    outputs = {}
    for step in range(3):
        t = step + 1
        for name in params:
            grad = fx[f"in_{name}_grads"][step]
            if kind == "l2" and name == "weight":
                grad = grad + weight_decay * params[name]
            m[name] = beta1 * m[name] + (1 - beta1) * grad
            v[name] = beta2 * v[name] + (1 - beta2) * grad * grad
            m_hat = m[name] if kind == "no correction" else m[name] / (1 - beta1 ** t)
            v_hat = v[name] if kind == "no correction" else v[name] / (1 - beta2 ** t)
            if kind == "no correction" and name == "weight":
                params[name] = params[name] - lr * weight_decay * params[name]
            params[name] = params[name] - lr * m_hat / (np.sqrt(v_hat) + eps)
            outputs[f"{name} after step {t}"] = params[name].copy()
    return outputs


def top_p_strict(logits, top_p):
    """The off-by-one: keep only tokens whose cumulative mass stays <= p (the one crossing p is lost)."""
    probs = softmax_forward(logits)[0]
    order = np.argsort(-probs, axis=-1)
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    keep_sorted = np.cumsum(sorted_probs, axis=-1) <= top_p
    keep_sorted[:, 0] = True
    keep = np.zeros_like(keep_sorted)
    np.put_along_axis(keep, order, keep_sorted, axis=-1)
    kept = np.where(keep, probs, 0.0)
    return kept / kept.sum(axis=-1, keepdims=True)


def build(number):
    rng = np.random.default_rng(int(number) + 100)
    fx = {f"in_{name}": value for name, value in make_inputs(number, rng).items()}
    with backend.use_backend("numpy"):
        expected = RUNNERS[number](fx)
        mistakes = make_mistakes(number, fx, expected)
    arrays = dict(fx)
    arrays.update({f"out_{name}": np.asarray(value) for name, value in expected.items()})
    for mistake, outputs in mistakes.items():
        for name, value in outputs.items():
            arrays[f"mistake_{mistake}|{name}"] = np.asarray(value)
    return arrays


def main():
    FIXTURE_DIR.mkdir(exist_ok=True)
    for number in RUNNERS:
        arrays = build(number)
        path = FIXTURE_DIR / f"{number}.npz"
        np.savez(path, **arrays)
        print(f"wrote {path.name}: {len(arrays)} arrays")


if __name__ == "__main__":
    main()
