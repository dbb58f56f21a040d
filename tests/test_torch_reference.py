"""A second oracle beside finite differences: every model family against PyTorch autograd, float64.

Each model's weights are copied into the same computation written here with torch functional ops;
logits, loss and EVERY parameter gradient must agree to 1e-10. Skipped cleanly without torch
(pip install -r requirements-torch.txt). The library itself never imports torch.
"""
import numpy as np
import pytest

from numpy_transformer import backend
from numpy_transformer.gradcheck import randomize_parameters
from numpy_transformer.models import Encoder, EncoderConfig, GPT, GPTConfig, Transformer, TransformerConfig

torch = pytest.importorskip("torch")
F = torch.nn.functional
RTOL = 1e-10


@pytest.fixture(params=["numpy", "numba"])
def backend_name(request):
    with backend.use_backend(request.param):
        yield request.param


def torch_params(model):
    """{dotted name: float64 leaf tensor with requires_grad}, copies of the model's parameters."""
    return {name: torch.tensor(value, dtype=torch.float64, requires_grad=True)
            for name, value in model.parameters().items()}


def linear(p, prefix, x):
    return x @ p[f"{prefix}.weight"] + p[f"{prefix}.bias"]


def layer_norm(p, prefix, x, eps):
    return F.layer_norm(x, x.shape[-1:], p[f"{prefix}.gamma"], p[f"{prefix}.beta"], eps)


def attention(p, prefix, x, memory, num_heads, causal, key_padding):
    """Multi-head attention as in layers/multihead.py, with torch's scaled_dot_product_attention."""
    B, T, C = x.shape
    source = x if memory is None else memory
    S = source.shape[1]
    D = C // num_heads
    split = lambda t, n: t.reshape(B, n, num_heads, D).transpose(1, 2)      # (B, H, n, D)
    q = split(linear(p, f"{prefix}.query", x), T)
    k = split(linear(p, f"{prefix}.key", source), S)
    v = split(linear(p, f"{prefix}.value", source), S)
    allowed = torch.ones(B, 1, T, S, dtype=torch.bool)
    if causal:
        allowed = allowed & torch.ones(T, S, dtype=torch.bool).tril(S - T)
    if key_padding is not None:
        allowed = allowed & ~torch.as_tensor(key_padding)[:, None, None, :]
    scores = (q @ k.transpose(-1, -2)) / np.sqrt(D)
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)              # fully masked rows -> 0
    heads = (weights @ v).transpose(1, 2).reshape(B, T, C)
    return linear(p, f"{prefix}.out", heads)


def activation(name, x):
    if name == "relu":
        return F.relu(x)
    return F.gelu(x, approximate="tanh" if name == "gelu_tanh" else "none")


def residual(p, prefix, x, sublayer, pre_norm, eps):
    if pre_norm:
        return x + sublayer(layer_norm(p, f"{prefix}.norm", x, eps))
    return layer_norm(p, f"{prefix}.norm", x + sublayer(x), eps)


def feed_forward(p, prefix, x, act):
    return linear(p, f"{prefix}.fc2", activation(act, linear(p, f"{prefix}.fc1", x)))


def encoder_layer(p, prefix, x, config, causal, key_padding):
    eps = config.layer_norm_eps
    x = residual(p, f"{prefix}.attn", x, lambda h: attention(p, f"{prefix}.attn.sublayer", h, None, config.num_heads,
                                                             causal, key_padding), config.pre_norm, eps)
    return residual(p, f"{prefix}.ffn", x, lambda h: feed_forward(p, f"{prefix}.ffn.sublayer", h, config.activation),
                    config.pre_norm, eps)


def compare(model, params, logits_np, loss_np, logits_t, loss_t):
    np.testing.assert_allclose(logits_np, logits_t.detach().numpy(), rtol=RTOL, atol=1e-12)
    np.testing.assert_allclose(float(loss_np), loss_t.item(), rtol=RTOL)
    loss_t.backward()
    grads = model.grads()
    for name, tensor in params.items():
        expected = np.zeros_like(grads[name]) if tensor.grad is None else tensor.grad.numpy()
        np.testing.assert_allclose(grads[name], expected, rtol=RTOL, atol=1e-12, err_msg=name)


def test_gpt_matches_torch(backend_name):
    config = GPTConfig(vocab_size=13, max_len=8, width=12, num_heads=3, num_layers=2, dtype="float64", seed=1)
    model = randomize_parameters(GPT(config), np.random.default_rng(0))
    rng = np.random.default_rng(1)
    ids, targets = rng.integers(0, 13, (2, 8)), rng.integers(0, 13, (2, 8))
    logits, loss = model.forward(ids, targets)
    model.backward()

    p = torch_params(model)
    x = p["embed.tokens.weight"][torch.as_tensor(ids)] + p["embed.positions.weight"][:8]
    for i in range(config.num_layers):
        x = encoder_layer(p, f"blocks.{i}", x, config, causal=True, key_padding=None)
    x = layer_norm(p, "final_norm", x, config.layer_norm_eps)
    logits_t = x @ p["embed.tokens.weight"].T                              # tied, no bias
    loss_t = F.cross_entropy(logits_t.reshape(-1, 13), torch.as_tensor(targets).reshape(-1))
    compare(model, p, logits, loss, logits_t, loss_t)


@pytest.mark.parametrize("head", ["mlm", "classify"])
def test_encoder_matches_torch(head, backend_name):
    config = EncoderConfig(vocab_size=11, max_len=7, width=8, num_heads=2, num_layers=2, num_classes=3,
                           type_vocab_size=2, dtype="float64", seed=2)
    model = randomize_parameters(Encoder(config), np.random.default_rng(0))
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 11, (3, 7))
    types = rng.integers(0, 2, (3, 7))
    padding = np.zeros((3, 7), dtype=bool)
    padding[1, 5:] = True
    if head == "mlm":
        targets = np.where(rng.random((3, 7)) < 0.5, rng.integers(0, 11, (3, 7)), -100)
        targets[0, 0] = 4
    else:
        targets = rng.integers(0, 3, 3)
    logits, loss = model.forward(ids, targets, padding_mask=padding, token_type_ids=types, head=head)
    model.backward()

    p = torch_params(model)
    eps = config.layer_norm_eps
    x = (p["embed.tokens.weight"][torch.as_tensor(ids)] + p["embed.positions.weight"][:7]
         + p["embed.token_types.weight"][torch.as_tensor(types)])
    x = layer_norm(p, "embed_norm", x, eps)
    for i in range(config.num_layers):
        x = encoder_layer(p, f"layers.{i}", x, config, causal=False, key_padding=padding)
    if head == "mlm":
        h = layer_norm(p, "mlm_norm", F.gelu(linear(p, "mlm_transform", x)), eps)
        logits_t = h @ p["embed.tokens.weight"].T + p["mlm_out.bias"]
        loss_t = F.cross_entropy(logits_t.reshape(-1, 11), torch.as_tensor(targets).reshape(-1), ignore_index=-100)
    else:
        pooled = torch.tanh(linear(p, "pooler", x[:, 0]))
        logits_t = linear(p, "classifier", pooled)
        loss_t = F.cross_entropy(logits_t, torch.as_tensor(targets))
    compare(model, p, logits, loss, logits_t, loss_t)


def test_transformer_matches_torch(backend_name):
    config = TransformerConfig(src_vocab_size=9, trg_vocab_size=10, max_len=8, width=8, num_heads=2, num_layers=2,
                               label_smoothing=0.1, dtype="float64", seed=4)
    model = randomize_parameters(Transformer(config), np.random.default_rng(0))
    rng = np.random.default_rng(5)
    src, trg = rng.integers(1, 9, (2, 6)), rng.integers(1, 10, (2, 5))
    src[1, 4:] = 0                                                         # pad_id 0: padded source keys
    trg[0, 4:] = 0
    targets = np.roll(trg, -1, axis=1)
    logits, loss = model.forward(src, trg, targets)
    model.backward()

    p = torch_params(model)
    eps, C = config.layer_norm_eps, config.width
    src_table = torch.as_tensor(model.src_embed.positions.table)           # fixed sinusoids, not parameters
    trg_table = torch.as_tensor(model.trg_embed.positions.table)
    src_pad, trg_pad = src == 0, trg == 0
    x = p["src_embed.tokens.weight"][torch.as_tensor(src)] * np.sqrt(C) + src_table[:6]
    for i in range(config.num_layers):
        x = encoder_layer(p, f"encoder_layers.{i}", x, config, causal=False, key_padding=src_pad)
    memory = x
    y = p["trg_embed.tokens.weight"][torch.as_tensor(trg)] * np.sqrt(C) + trg_table[:5]
    for i in range(config.num_layers):
        prefix = f"decoder_layers.{i}"
        y = residual(p, f"{prefix}.self_attn", y, lambda h: attention(
            p, f"{prefix}.self_attn.sublayer", h, None, config.num_heads, True, trg_pad), False, eps)
        y = residual(p, f"{prefix}.cross_attn", y, lambda h: attention(
            p, f"{prefix}.cross_attn.sublayer", h, memory, config.num_heads, False, src_pad), False, eps)
        y = residual(p, f"{prefix}.ffn", y, lambda h: feed_forward(p, f"{prefix}.ffn.sublayer", h, config.activation),
                     False, eps)
    logits_t = y @ p["trg_embed.tokens.weight"].T + p["head.bias"]
    loss_t = F.cross_entropy(logits_t.reshape(-1, 10), torch.as_tensor(targets).reshape(-1), ignore_index=0,
                             label_smoothing=0.1)
    compare(model, p, logits, loss, logits_t, loss_t)
