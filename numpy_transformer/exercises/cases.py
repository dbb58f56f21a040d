"""How the grader runs each exercise: inputs from a fixture in, the student's outputs out.

A runner takes the fixture (a dict of arrays named ``in_*``) and returns {output name: array},
calling only the library's own functions, so it works the same in the instructor's copy (where it
produces the expected values) and in the student's copy (where it produces what is graded).
"""
import numpy as np

from ..layers.activations import gelu_backward, gelu_forward, relu_backward, relu_forward
from ..layers.attention import AttentionCache, attention_backward, attention_forward
from ..layers.embedding import embedding_backward, embedding_forward
from ..layers.layernorm import LayerNorm, layernorm_backward, layernorm_forward
from ..layers.linear import Linear, linear_backward, linear_forward
from ..layers.loss import cross_entropy_backward, cross_entropy_forward
from ..layers.multihead import merge_heads, split_heads
from ..layers.positional import sinusoidal_encoding
from ..layers.residual import Residual
from ..layers.softmax import softmax_backward, softmax_forward


def linear_backward_case(fx):
    _, cache = linear_forward(fx["in_x"], fx["in_weight"], fx["in_bias"])
    dx, dweight, dbias = linear_backward(fx["in_dy"], cache)
    _, cache_no_bias = linear_forward(fx["in_x"], fx["in_weight"], None)
    dbias_no_bias = linear_backward(fx["in_dy"], cache_no_bias)[2]
    return {"dx": dx, "dweight": dweight, "dbias": dbias,
            "dbias is None when there is no bias": np.array(dbias_no_bias is None)}


def activation_backward_case(fx):
    x, dy = fx["in_x"], fx["in_dy"]
    return {"relu dx": relu_backward(dy, relu_forward(x)[1]),
            "gelu dx": gelu_backward(dy, gelu_forward(x, "none")[1]),
            "gelu_tanh dx": gelu_backward(dy, gelu_forward(x, "tanh")[1])}


def softmax_case(fx):
    p, cache = softmax_forward(fx["in_x"])
    p_masked, _ = softmax_forward(fx["in_x"], fx["in_mask"])
    p_large, _ = softmax_forward(fx["in_x"] + 1000.0)
    return {"p": p, "masked p": p_masked, "p of large logits": p_large,
            "dx": softmax_backward(fx["in_dp"], cache)}


def cross_entropy_case(fx):
    loss, cache = cross_entropy_forward(fx["in_logits"], fx["in_targets"], -100, 0.0)
    smooth_loss, smooth_cache = cross_entropy_forward(fx["in_logits"], fx["in_targets"], -100, 0.1)
    large_loss, _ = cross_entropy_forward(fx["in_logits"] * 400.0, fx["in_targets"], -100, 0.0)
    return {"loss": np.asarray(loss), "dlogits": cross_entropy_backward(1.0, cache),
            "smoothed loss": np.asarray(smooth_loss), "smoothed dlogits": cross_entropy_backward(1.0, smooth_cache),
            "loss of large logits": np.asarray(large_loss)}


def embedding_backward_case(fx):
    _, cache = embedding_forward(fx["in_ids"], fx["in_weight"])
    return {"dweight": embedding_backward(fx["in_dout"], cache)}


def positional_encoding_case(fx):
    max_len, width = (int(n) for n in fx["in_size"])
    return {"table": sinusoidal_encoding(max_len, width, np.float64)}


def layernorm_case(fx):
    y, cache = layernorm_forward(fx["in_x"], fx["in_gamma"], fx["in_beta"])
    dx, dgamma, dbeta = layernorm_backward(fx["in_dy"], cache)
    return {"y": y, "dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def attention_forward_case(fx):
    q, k, v = fx["in_q"], fx["in_k"], fx["in_v"]
    plain, plain_cache = attention_forward(q, k, v)
    causal, causal_cache = attention_forward(q, k, v, causal=True)
    padded, padded_cache = attention_forward(q, k, v, key_padding_mask=fx["in_padding"])
    cross, _ = attention_forward(q[:, :, :2], k, v, causal=True)        # 2 queries, 5 keys, causal offset
    return {"out": plain, "weights": plain_cache.weights, "causal out": causal,
            "causal weights": causal_cache.weights, "padded out": padded, "padded weights": padded_cache.weights,
            "offset causal out": cross}


def attention_backward_case(fx):
    cache = AttentionCache(fx["in_q"], fx["in_k"], fx["in_v"], fx["in_out"], fx["in_lse"], fx["in_weights"],
                           float(fx["in_scale"]), True, None)
    dq, dk, dv = attention_backward(fx["in_dout"], cache)
    return {"dq": dq, "dk": dk, "dv": dv}


def multihead_split_merge_case(fx):
    heads = split_heads(fx["in_x"], int(fx["in_num_heads"]))
    return {"split": heads, "merge": merge_heads(fx["in_heads"])}


def residual_backward_case(fx):
    outputs = {}
    for arrangement, pre_norm in (("pre-LN", True), ("post-LN", False)):
        inner = Linear(4, 4, np.random.default_rng(0), dtype=np.float64)
        block = Residual(inner, 4, pre_norm=pre_norm, dtype=np.float64)
        inner.params["weight"][...] = fx["in_weight"]
        inner.params["bias"][...] = fx["in_bias"]
        block.norm.params["gamma"][...] = fx["in_gamma"]
        block.norm.params["beta"][...] = fx["in_beta"]
        block.forward(fx["in_x"])
        outputs[f"{arrangement} dx"] = block.backward(fx["in_dy"])
        outputs[f"{arrangement} dweight"] = inner.dparams["weight"].copy()
        outputs[f"{arrangement} dgamma"] = block.norm.dparams["gamma"].copy()
    return outputs


def kv_cache_case(fx):
    from ..models.gpt import GPT, GPTConfig
    model = GPT(GPTConfig(vocab_size=11, max_len=8, width=8, num_heads=2, num_layers=2, dtype="float64", seed=3))
    ids = fx["in_ids"]
    cache = model.new_kv_cache()
    pieces = [model.forward(ids[:, :3], kv_cache=cache)[0]]
    for t in range(3, ids.shape[1]):
        pieces.append(model.forward(ids[:, t:t + 1], kv_cache=cache)[0])
    return {"incremental logits": np.concatenate(pieces, axis=1)}


def adamw_case(fx):
    from ..optim import AdamW
    layer = Linear(3, 2, np.random.default_rng(0), dtype=np.float64)      # weight decays, bias does not
    layer.params["weight"][...] = fx["in_weight"]
    layer.params["bias"][...] = fx["in_bias"]
    optimizer = AdamW(layer, lr=0.1, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=0.5)
    outputs = {}
    for step in range(3):
        layer.dparams["weight"][...] = fx["in_weight_grads"][step]
        layer.dparams["bias"][...] = fx["in_bias_grads"][step]
        optimizer.step()
        outputs[f"weight after step {step + 1}"] = layer.params["weight"].copy()
        outputs[f"bias after step {step + 1}"] = layer.params["bias"].copy()
    return outputs


def sampling_case(fx):
    from ..generate import next_token_probs
    logits = fx["in_logits"]
    return {"temperature 0.5": next_token_probs(logits, temperature=0.5),
            "temperature 2": next_token_probs(logits, temperature=2.0),
            "top-k 3": next_token_probs(logits, top_k=3),
            "top-p 0.7": next_token_probs(logits, top_p=0.7),
            "top-k 4 and top-p 0.6 at temperature 0.8": next_token_probs(logits, 0.8, top_k=4, top_p=0.6)}


RUNNERS = {
    "01": linear_backward_case, "02": activation_backward_case, "03": softmax_case, "04": cross_entropy_case,
    "05": embedding_backward_case, "06": positional_encoding_case, "07": layernorm_case,
    "08": attention_forward_case, "09": attention_backward_case, "10": multihead_split_merge_case,
    "11": residual_backward_case, "12": adamw_case, "13": sampling_case, "14": kv_cache_case,
}
