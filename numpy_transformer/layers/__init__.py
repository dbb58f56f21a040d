"""Every layer: a pure forward/backward pair of functions, and a thin Layer class around it."""
from .activations import GELU, ReLU, Tanh, gelu_backward, gelu_forward, relu_backward, relu_forward
from .attention import attention_backward, attention_forward, build_attention_mask
from .base import Layer
from .dropout import Dropout, dropout_backward, dropout_forward
from .embedding import Embedding, embedding_backward, embedding_forward
from .ffn import FeedForward
from .input_embedding import InputEmbedding
from .layernorm import LayerNorm, layernorm_backward, layernorm_forward
from .linear import Linear, linear_backward, linear_forward
from .loss import CrossEntropyLoss, cross_entropy_backward, cross_entropy_forward
from .multihead import MultiHeadAttention, merge_heads, split_heads
from .output import OutputProjection
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding, sinusoidal_encoding
from .residual import Residual
from .softmax import Softmax, softmax_backward, softmax_forward
from .transformer_layers import DecoderLayer, EncoderLayer
