"""Text generation: pick the next token from the model's logits, append it, repeat.

Choosing the next token from logits z (V,):
    greedy        argmax z
    temperature   p = softmax(z / tau): tau < 1 sharpens, tau > 1 flattens; tau -> 0 is greedy
    top-k         keep the k largest logits, renormalise, sample
    top-p         keep the smallest set of tokens whose probabilities add up to at least p
                  ("nucleus"; Holtzman et al., 2020), renormalise, sample

The KV cache: a causal model's keys and values at positions 0..t never change when tokens are
appended, so each layer keeps them (model.new_kv_cache()) and a step only computes the NEW position,
attending to the cached ones: O(T) work per token instead of O(T^2), the same logits.
"""
import numpy as np

from .models.gpt import kv_cache_length


def check_sampling(temperature, top_k, top_p):
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def next_token_probs(logits, temperature=1.0, top_k=None, top_p=None):
    """The distribution to sample the next token from. logits: (B, V) -> probs: (B, V), rows sum to 1."""
    check_sampling(temperature, top_k, top_p)
    logits = logits.astype(np.float64)                                 # (B, V)
    if temperature == 0:                                               # greedy: all mass on the argmax
        probs = np.zeros_like(logits)
        probs[np.arange(len(logits)), logits.argmax(axis=-1)] = 1.0
        return probs
    # ==== exercise 13 sampling ====
    scaled = logits / temperature                                      # (B, V)
    if top_k is not None and top_k < scaled.shape[-1]:
        kth_largest = np.sort(scaled, axis=-1)[:, -top_k][:, None]     # (B, 1)
        scaled = np.where(scaled < kth_largest, -np.inf, scaled)       # (B, V)
    shifted = scaled - scaled.max(axis=-1, keepdims=True)              # (B, V)
    probs = np.exp(shifted)
    probs /= probs.sum(axis=-1, keepdims=True)                         # (B, V)
    if top_p is not None and top_p < 1.0:
        order = np.argsort(-probs, axis=-1)                            # (B, V) most likely first
        sorted_probs = np.take_along_axis(probs, order, axis=-1)       # (B, V)
        mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs  # (B, V) mass of the tokens ahead
        keep_sorted = mass_before < top_p                              # (B, V) the first always stays
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=-1)           # (B, V) back in vocabulary order
        probs = np.where(keep, probs, 0.0)
        probs /= probs.sum(axis=-1, keepdims=True)
    # ==== end exercise 13 ====
    return probs


def sample_next(logits, rng=None, temperature=1.0, top_k=None, top_p=None):
    """(B, V) logits -> (B,) next ids. temperature=0 is greedy and needs no rng."""
    probs = next_token_probs(logits, temperature, top_k, top_p)        # (B, V)
    if temperature == 0:
        return probs.argmax(axis=-1)
    if rng is None:
        raise ValueError("sampling with temperature > 0 needs rng=np.random.default_rng(seed)")
    cumulative = np.cumsum(probs, axis=-1)                             # (B, V)
    draws = rng.random((len(probs), 1))                                # (B, 1)
    ids = (cumulative < draws * cumulative[:, -1:]).sum(axis=-1)       # (B,) inverse-CDF sampling
    return np.minimum(ids, probs.shape[-1] - 1)


def generate(model, prompt_ids, max_new_tokens, rng=None, temperature=1.0, top_k=None, top_p=None,
             use_cache=True, stop_id=None):
    """Continue each row of prompt_ids with a GPT model. prompt_ids: (T0,) or (B, T0) -> (B, T0 + n).

    With use_cache, the prompt fills the KV cache in one forward and each new token costs one
    position. When the cache holds max_len positions the context must slide: the cache is rebuilt
    from the last max_len // 2 tokens, then grows again (without the cache, every step re-reads the
    last max_len tokens, so the two agree exactly only while the sequence fits in max_len).
    stop_id: stop once every row has produced it.
    """
    ids = np.atleast_2d(np.asarray(prompt_ids, dtype=np.int64))       # (B, T0)
    if ids.shape[1] == 0:
        raise ValueError("the prompt is empty: give at least one token")
    max_len = model.config.max_len
    model.eval()
    cache = None
    finished = np.zeros(len(ids), dtype=bool)                         # (B,) rows that produced stop_id
    for _ in range(max_new_tokens):
        if not use_cache:
            logits, _ = model.forward(ids[:, -max_len:])              # (B, T, V)
        elif cache is None or kv_cache_length(cache) == max_len:     # first step, or the cache is full
            keep = max_len if cache is None else max(max_len // 2, 1)
            cache = model.new_kv_cache()
            logits, _ = model.forward(ids[:, -keep:], kv_cache=cache)  # (B, T, V): prompt or recent half
        else:
            logits, _ = model.forward(ids[:, -1:], kv_cache=cache)    # (B, 1, V): only the newest token
        next_ids = sample_next(logits[:, -1, :], rng, temperature, top_k, top_p)   # (B,)
        ids = np.concatenate([ids, next_ids[:, None]], axis=1)        # (B, T + 1)
        finished |= next_ids == stop_id
        if stop_id is not None and finished.all():
            break
    model.cache = None
    return ids


def generate_seq2seq(model, src_ids, bos_id, eos_id, max_new_tokens, rng=None, temperature=0.0, top_k=None,
                     top_p=None, use_cache=True):
    """Decode targets for a batch of sources with the encoder-decoder. src_ids: (B, S) -> (B, n) ids.

    The encoder runs once; the decoder starts from <bos> and appends one token per step (greedy by
    default), with the self-attention KV cache unless use_cache=False. Stops when every row has
    produced eos_id or after max_new_tokens; the returned ids exclude <bos>.
    """
    src = np.atleast_2d(np.asarray(src_ids, dtype=np.int64))          # (B, S)
    model.eval()
    memory, src_padding = model.encode(src)                           # (B, S, C)
    out = np.full((len(src), 1), bos_id, dtype=np.int64)              # (B, 1)
    cache = model.new_kv_cache() if use_cache else None
    finished = np.zeros(len(src), dtype=bool)                         # (B,)
    for _ in range(min(max_new_tokens, model.config.max_len - 1)):
        if use_cache:
            logits = model.decode(out[:, -1:], memory, src_padding, kv_cache=cache)   # (B, 1, V)
        else:
            logits = model.decode(out, memory, src_padding)            # (B, T, V)
        next_ids = sample_next(logits[:, -1, :], rng, temperature, top_k, top_p)     # (B,)
        out = np.concatenate([out, next_ids[:, None]], axis=1)        # (B, T + 1)
        finished |= next_ids == eos_id
        if finished.all():
            break
    model.cache = None
    return out[:, 1:]
