"""The three model families, built only from numpy_transformer.layers."""
from .encoder import Encoder, EncoderConfig
from .gpt import GPT, GPTConfig
from .transformer import Transformer, TransformerConfig

__all__ = ["GPT", "GPTConfig", "Encoder", "EncoderConfig", "Transformer", "TransformerConfig"]
