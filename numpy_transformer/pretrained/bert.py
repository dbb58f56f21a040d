"""A Hugging Face BERT checkpoint (config.json + model.safetensors) onto the project's Encoder.

The architecture is the same, detail for detail; only the names and the weight layout differ.

    BERT (config.json)                      EncoderConfig
    vocab_size, max_position_embeddings     vocab_size, max_len (the learned position table)
    hidden_size, num_attention_heads        width C, num_heads H
    num_hidden_layers, intermediate_size    num_layers, ffn_hidden F
    type_vocab_size                         type_vocab_size (segment embeddings)
    hidden_act "gelu"                       activation "gelu" (exact, with erf; "gelu_new" -> "gelu_tanh")
    layer_norm_eps (1e-12)                  layer_norm_eps
    post-LN: LayerNorm(x + sublayer(x))     pre_norm=False
    position_embedding_type "absolute"      positional "learned"

Weights: torch's nn.Linear stores W as (C_out, C_in) and computes x W^T + b; our Linear stores
(C_in, C_out) and computes x W + b. So every dense weight is transposed on the way in (and out);
embeddings, LayerNorm gains/biases and all biases are copied as they are.

Differences that do not change an evaluation-mode forward:
  - BERT applies embedding dropout AFTER the embedding LayerNorm; our InputEmbedding applies its
    dropout BEFORE it (inside the embedding). With dropout 0 or in eval() mode they are identical;
    when fine-tuning with dropout > 0 the noise lands in a slightly different place.
  - BERT adds word + token type + position; we add word + position + token type (float32 rounding
    of the order, ~1e-7).
  - BERT masks padded keys by adding the most negative float32 to their scores; we set them to -inf.
    Both give exactly zero weight to padding.
  - BERT also drops out attention probabilities (attention_probs_dropout_prob); our attention has no
    dropout on its weights, only on each sub-layer's output.
The pooler (pooler.dense: tanh(x[CLS] W + b)) is mapped onto the Encoder's classification pooler,
so head="classify" starts from BERT's pretrained pooler (the classifier after it stays freshly
initialised). A masked-LM head (cls.predictions.*) is mapped when the checkpoint has one; this
sentence-embedding checkpoint has none, so ours stays at its random initialisation (unused).
"""
import json
import os

import numpy as np

from ..models.encoder import Encoder, EncoderConfig

ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "relu": "relu"}
IGNORED = ("embeddings.position_ids",)          # a buffer holding 0..511, not a weight


def encoder_config_from_bert(bert_config, dtype="float32", num_classes=2, num_layers=None):
    """A Hugging Face BERT config (dict, or path to config.json) -> EncoderConfig.

    num_layers: keep only the first this many layers (for small test copies); default all of them.
    """
    if isinstance(bert_config, (str, os.PathLike)):
        with open(bert_config, encoding="utf-8") as f:
            bert_config = json.load(f)
    hidden_act = bert_config.get("hidden_act", "gelu")
    if hidden_act not in ACTIVATIONS:
        raise ValueError(f"hidden_act {hidden_act!r} is not supported; known: {sorted(ACTIVATIONS)}")
    position_type = bert_config.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"position_embedding_type {position_type!r} is not supported; only 'absolute' "
                         "(a learned position table) maps onto this encoder")
    total_layers = bert_config["num_hidden_layers"]
    num_layers = total_layers if num_layers is None else num_layers
    if not 1 <= num_layers <= total_layers:
        raise ValueError(f"num_layers must be in 1..{total_layers}, got {num_layers}")
    return EncoderConfig(
        vocab_size=bert_config["vocab_size"],
        max_len=bert_config["max_position_embeddings"],
        width=bert_config["hidden_size"],
        num_heads=bert_config["num_attention_heads"],
        num_layers=num_layers,
        ffn_hidden=bert_config["intermediate_size"],
        num_classes=num_classes,
        type_vocab_size=bert_config.get("type_vocab_size", 2),
        dropout=0.0,                     # inference; set model layers' dropout yourself to fine-tune with it
        activation=ACTIVATIONS[hidden_act],
        positional="learned",
        pre_norm=False,
        layer_norm_eps=bert_config.get("layer_norm_eps", 1e-12),
        dtype=dtype,
    )


def bert_config_from_encoder(config):
    """The reverse of encoder_config_from_bert: a BERT config.json dict describing an EncoderConfig."""
    if config.pre_norm or config.positional != "learned":
        raise ValueError("BERT is post-LN with learned positions: pre_norm must be False and positional 'learned'")
    activation = {ours: theirs for theirs, ours in ACTIVATIONS.items() if theirs != "gelu_pytorch_tanh"}
    return {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": config.vocab_size,
            "max_position_embeddings": config.max_len, "hidden_size": config.width,
            "num_attention_heads": config.num_heads, "num_hidden_layers": config.num_layers,
            "intermediate_size": config.ffn_hidden if config.ffn_hidden else 4 * config.width,
            "type_vocab_size": config.type_vocab_size, "hidden_act": activation[config.activation],
            "layer_norm_eps": config.layer_norm_eps, "position_embedding_type": "absolute",
            "hidden_dropout_prob": config.dropout, "attention_probs_dropout_prob": 0.0, "pad_token_id": 0}


def bert_name_map(config, include_pooler=True, include_mlm=False):
    """[(BERT tensor name, our parameter name, transpose?)] for an Encoder with this config."""
    pairs = [
        ("embeddings.word_embeddings.weight", "embed.tokens.weight", False),
        ("embeddings.position_embeddings.weight", "embed.positions.weight", False),
        ("embeddings.LayerNorm.weight", "embed_norm.gamma", False),
        ("embeddings.LayerNorm.bias", "embed_norm.beta", False),
    ]
    if config.type_vocab_size > 0:
        pairs.append(("embeddings.token_type_embeddings.weight", "embed.token_types.weight", False))
    for i in range(config.num_layers):
        bert, ours = f"encoder.layer.{i}", f"layers.{i}"
        dense = [  # BERT sub-module                  our Linear
            ("attention.self.query", "attn.sublayer.query"),
            ("attention.self.key", "attn.sublayer.key"),
            ("attention.self.value", "attn.sublayer.value"),
            ("attention.output.dense", "attn.sublayer.out"),
            ("intermediate.dense", "ffn.sublayer.fc1"),
            ("output.dense", "ffn.sublayer.fc2"),
        ]
        for bert_part, our_part in dense:
            pairs.append((f"{bert}.{bert_part}.weight", f"{ours}.{our_part}.weight", True))
            pairs.append((f"{bert}.{bert_part}.bias", f"{ours}.{our_part}.bias", False))
        norms = [("attention.output.LayerNorm", "attn.norm"), ("output.LayerNorm", "ffn.norm")]
        for bert_part, our_part in norms:
            pairs.append((f"{bert}.{bert_part}.weight", f"{ours}.{our_part}.gamma", False))
            pairs.append((f"{bert}.{bert_part}.bias", f"{ours}.{our_part}.beta", False))
    if include_pooler:
        pairs += [("pooler.dense.weight", "pooler.weight", True), ("pooler.dense.bias", "pooler.bias", False)]
    if include_mlm:
        pairs += [
            ("cls.predictions.transform.dense.weight", "mlm_transform.weight", True),
            ("cls.predictions.transform.dense.bias", "mlm_transform.bias", False),
            ("cls.predictions.transform.LayerNorm.weight", "mlm_norm.gamma", False),
            ("cls.predictions.transform.LayerNorm.bias", "mlm_norm.beta", False),
            ("cls.predictions.bias", "mlm_out.bias", False),     # the decoder weight is the tied embedding
        ]
    return pairs


def strip_prefix(tensors):
    """BertForMaskedLM and friends save the encoder under "bert."; BertModel saves it bare."""
    if any(name.startswith("bert.") for name in tensors):
        return {name[len("bert."):] if name.startswith("bert.") else name: value for name, value in tensors.items()}
    return tensors


def load_bert_weights(model, tensors, source="checkpoint"):
    """Copy BERT-named tensors into an Encoder's parameters in place (transposing dense weights).

    Raises ValueError naming every missing tensor, or the first one whose shape does not fit.
    Returns the list of checkpoint names that were not used (e.g. layers beyond num_layers).
    """
    tensors = strip_prefix(tensors)
    config = model.config
    has_pooler = "pooler.dense.weight" in tensors
    has_mlm = "cls.predictions.transform.dense.weight" in tensors
    pairs = bert_name_map(config, include_pooler=has_pooler, include_mlm=has_mlm)
    missing = [bert_name for bert_name, _, _ in pairs if bert_name not in tensors]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{source} is missing {len(missing)} tensor(s) the encoder needs: {shown}")
    params = model.parameters()
    for bert_name, our_name, transpose in pairs:
        value = tensors[bert_name]
        value = value.T if transpose else value
        target = params[our_name]
        if value.shape != target.shape:
            layout = " after transposing torch's (out, in) layout" if transpose else ""
            raise ValueError(f"{source}: tensor {bert_name!r} has shape {tuple(tensors[bert_name].shape)}; "
                             f"{our_name} needs {target.shape}{layout}")
        target[...] = value                     # in place, converting to the model's dtype
    used = {bert_name for bert_name, _, _ in pairs}
    return sorted(name for name in tensors if name not in used and name not in IGNORED)


def export_bert_state_dict(model, include_pooler=True):
    """The reverse mapping: {BERT name: numpy array} from an Encoder, dense weights transposed back to
    torch's (out, in). A PyTorch user loads it with
        BertModel(config).load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    """
    params = model.parameters()
    state = {}
    for bert_name, our_name, transpose in bert_name_map(model.config, include_pooler=include_pooler):
        value = params[our_name]
        state[bert_name] = np.ascontiguousarray(value.T if transpose else value)
    return state


def build_encoder_from_bert(bert_config, tensors, dtype="float32", num_layers=None, source="checkpoint"):
    """config + BERT-named tensors -> a loaded Encoder in eval mode."""
    config = encoder_config_from_bert(bert_config, dtype=dtype, num_layers=num_layers)
    model = Encoder(config)
    load_bert_weights(model, tensors, source)
    return model.eval()
