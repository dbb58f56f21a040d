"""What every model does first: token vectors, optionally scaled, plus position vectors, then dropout."""
import math

import numpy as np

from .base import Layer
from .dropout import Dropout
from .embedding import Embedding
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding


class InputEmbedding(Layer):
    """x = Dropout(E[ids] * scale + P[positions] (+ T[token types])).

    positional: "learned" (GPT-2, BERT) or "sinusoidal" (the 2017 paper).
    scale: 1, or sqrt(C) as in the paper (section 3.4) so that token vectors of size ~1/sqrt(C)
    are not drowned by positional values of size ~1.
    type_vocab_size: > 0 adds BERT's segment ("token type") embedding.
    """

    def __init__(self, vocab_size, max_len, width, rng, positional="learned", scale_by_sqrt_width=False,
                 type_vocab_size=0, dropout=0.0, dtype=np.float32):
        super().__init__()
        self.max_len = max_len
        self.scale = math.sqrt(width) if scale_by_sqrt_width else 1.0
        self.tokens = Embedding(vocab_size, width, rng, dtype)
        if positional == "learned":
            self.positions = LearnedPositionalEmbedding(max_len, width, rng, dtype)
        elif positional == "sinusoidal":
            self.positions = SinusoidalPositionalEncoding(max_len, width, dtype)
        else:
            raise ValueError(f"positional must be 'learned' or 'sinusoidal', got {positional!r}")
        self.token_types = Embedding(type_vocab_size, width, rng, dtype) if type_vocab_size > 0 else None
        self.dropout = Dropout(dropout)

    def children(self):
        kids = [("tokens", self.tokens), ("positions", self.positions)]
        if self.token_types is not None:
            kids.append(("token_types", self.token_types))
        return kids + [("dropout", self.dropout)]

    def forward(self, ids, token_type_ids=None, offset=0, rng=None):
        """ids: (B, T) ints -> x: (B, T, C)."""
        if ids.ndim != 2:
            raise ValueError(f"token ids must have shape (B, T), got {ids.shape}")
        token_vecs = self.tokens.forward(ids) * self.scale               # (B, T, C)
        x = self.positions.forward(token_vecs, offset)                   # (B, T, C)
        use_types = self.token_types is not None
        if use_types:
            if token_type_ids is None:
                token_type_ids = np.zeros_like(ids)
            if token_type_ids.shape != ids.shape:
                raise ValueError(f"token_type_ids have shape {token_type_ids.shape}, expected {ids.shape}")
            x = x + self.token_types.forward(token_type_ids)             # (B, T, C)
        elif token_type_ids is not None:
            raise ValueError("token_type_ids given, but this model has no token-type embedding (type_vocab_size=0)")
        x = self.dropout.forward(x, rng)                                 # (B, T, C)
        self.cache = (use_types,)
        return x

    def backward(self, dx):
        (use_types,) = self.pop_cache()
        dx = self.dropout.backward(dx)                                   # (B, T, C)
        if use_types:
            self.token_types.backward(dx)
        dtoken_vecs = self.positions.backward(dx)                        # (B, T, C)
        self.tokens.backward(dtoken_vecs * self.scale)
