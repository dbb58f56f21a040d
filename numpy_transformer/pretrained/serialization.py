"""Save and load the project's models as safetensors, and map GPT onto the standard GPT-2 names.

save_model / load_model: any of the three families (GPT, Encoder, Transformer). The file holds every
parameter under its dotted name (``blocks.0.attn.sublayer.query.weight``), in our layout (Linear weights
are (C_in, C_out)), and the header's metadata holds

    {"format": "numpy_transformer", "family": "gpt" | "encoder" | "transformer",
     "config": "<the config dataclass as JSON>"}

so load_model rebuilds the same model and copies the arrays back: parameters equal bit for bit.

export_gpt2_state_dict / import_gpt2_state_dict: a GPT as {GPT-2 name: numpy array}, the layout of
Hugging Face's GPT2Model (and, under "transformer.", GPT2LMHeadModel):

    ours                                           GPT-2                       shape
    embed.tokens.weight                            wte.weight                  (V, C)
    embed.positions.weight                         wpe.weight                  (max_len, C)
    blocks.N.attn.norm.gamma / beta                h.N.ln_1.weight / bias      (C,)
    blocks.N.attn.sublayer.{query,key,value}       h.N.attn.c_attn.weight      (C, 3C) = [Wq | Wk | Wv]
                         .weight / .bias           h.N.attn.c_attn.bias        (3C,)  = [bq | bk | bv]
    blocks.N.attn.sublayer.out.weight / bias       h.N.attn.c_proj.weight/bias (C, C), (C,)
    blocks.N.ffn.norm.gamma / beta                 h.N.ln_2.weight / bias      (C,)
    blocks.N.ffn.sublayer.fc1.weight / bias        h.N.mlp.c_fc.weight / bias  (C, F), (F,)
    blocks.N.ffn.sublayer.fc2.weight / bias        h.N.mlp.c_proj.weight/bias  (F, C), (C,)
    final_norm.gamma / beta                        ln_f.weight / bias          (C,)
    head.weight (only when not tied)               lm_head.weight              (V, C)

GPT-2's projections are "Conv1D" modules that store W as (C_in, C_out) and compute x W + b: the same
layout as our Linear, so nothing is transposed (unlike BERT's nn.Linear, see bert.py). GPT-2 computes
q, k and v with ONE matrix: c_attn maps x (C) to 3C numbers and splits them into three blocks of C,
q = columns 0..C-1, k = C..2C-1, v = 2C..3C-1, each then split into heads of D columns exactly as
our split_heads does. So c_attn.weight is our three weights side by side, concatenated along the
output axis (axis 1), and the import splits it back into three (C, C) blocks.
"""
import json
from dataclasses import asdict, fields

import numpy as np

from ..layers.base import copy_arrays_into
from ..models.encoder import Encoder, EncoderConfig
from ..models.gpt import GPT, GPTConfig
from ..models.transformer import Transformer, TransformerConfig
from .safetensors_io import read_safetensors, write_safetensors

FORMAT = "numpy_transformer"
FAMILIES = {"gpt": (GPT, GPTConfig), "encoder": (Encoder, EncoderConfig), "transformer": (Transformer, TransformerConfig)}
GPT2_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}


def family_of(model):
    for family, (model_class, _) in FAMILIES.items():
        if isinstance(model, model_class):
            return family
    raise ValueError(f"cannot save a {type(model).__name__}: save_model knows {', '.join(FAMILIES)}")


def save_model(model, path):
    """Write model's parameters and config to path (.safetensors), atomically."""
    family = family_of(model)
    metadata = {"format": FORMAT, "family": family, "config": json.dumps(asdict(model.config))}
    write_safetensors(path, model.parameters(), metadata)


def load_model(path):
    """Rebuild the model saved by save_model at path. Raises ValueError naming missing, unexpected or
    mis-shaped tensors, or a file that save_model did not write."""
    tensors, metadata = read_safetensors(path)
    if metadata.get("format") != FORMAT or metadata.get("family") not in FAMILIES:
        raise ValueError(f"{path} was not written by save_model (metadata {metadata}); for a BERT "
                         "checkpoint use numpy_transformer.pretrained.bert.build_encoder_from_bert")
    model_class, config_class = FAMILIES[metadata["family"]]
    config_fields = json.loads(metadata["config"])
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(config_fields) - known)
    if unknown:
        raise ValueError(f"{path}: config fields {unknown} are unknown to {config_class.__name__}")
    model = model_class(config_class(**config_fields))
    copy_parameters(model, tensors, str(path))
    return model


def copy_parameters(model, tensors, source):
    """Copy {dotted name: array} into model.parameters() in place, after checking names and shapes."""
    copy_arrays_into(model.parameters(), tensors, f"{source}: tensors do not match the model")


# --- GPT-2 names ---------------------------------------------------------------------------------

def check_gpt2_compatible(config):
    if not config.pre_norm:
        raise ValueError("GPT-2 is pre-LN (ln_1, ln_2, ln_f): a GPT with pre_norm=False has no GPT-2 layout")
    if config.positional != "learned":
        raise ValueError(f"GPT-2 learns its positions (wpe): positional={config.positional!r} has no GPT-2 layout")
    if config.activation not in GPT2_ACTIVATIONS:
        raise ValueError(f"activation {config.activation!r} has no GPT-2 activation_function")


def gpt2_config_dict(config):
    """The keyword arguments of transformers.GPT2Config that describe the same network."""
    check_gpt2_compatible(config)
    return {"vocab_size": config.vocab_size, "n_positions": config.max_len, "n_embd": config.width,
            "n_layer": config.num_layers, "n_head": config.num_heads,
            "n_inner": config.ffn_hidden if config.ffn_hidden else 4 * config.width,
            "activation_function": GPT2_ACTIVATIONS[config.activation],
            "layer_norm_epsilon": config.layer_norm_eps, "tie_word_embeddings": config.tie_weights,
            "resid_pdrop": config.dropout, "embd_pdrop": config.dropout, "attn_pdrop": 0.0}


def export_gpt2_state_dict(model, prefix=""):
    """{GPT-2 name: numpy array} for a GPT (see the module docstring). prefix="transformer." gives
    GPT2LMHeadModel's names. Arrays are copies; c_attn is the concatenation [Wq | Wk | Wv]."""
    if not isinstance(model, GPT):
        raise ValueError(f"export_gpt2_state_dict needs a GPT, got {type(model).__name__}")
    check_gpt2_compatible(model.config)
    p = model.parameters()
    state = {f"{prefix}wte.weight": p["embed.tokens.weight"].copy(),             # (V, C)
             f"{prefix}wpe.weight": p["embed.positions.weight"].copy()}          # (max_len, C)
    for i in range(model.config.num_layers):
        ours, theirs = f"blocks.{i}", f"{prefix}h.{i}"
        attn = f"{ours}.attn.sublayer"
        state[f"{theirs}.ln_1.weight"] = p[f"{ours}.attn.norm.gamma"].copy()
        state[f"{theirs}.ln_1.bias"] = p[f"{ours}.attn.norm.beta"].copy()
        state[f"{theirs}.attn.c_attn.weight"] = np.concatenate(
            [p[f"{attn}.query.weight"], p[f"{attn}.key.weight"], p[f"{attn}.value.weight"]], axis=1)   # (C, 3C)
        state[f"{theirs}.attn.c_attn.bias"] = np.concatenate(
            [p[f"{attn}.query.bias"], p[f"{attn}.key.bias"], p[f"{attn}.value.bias"]])                 # (3C,)
        state[f"{theirs}.attn.c_proj.weight"] = p[f"{attn}.out.weight"].copy()     # (C, C)
        state[f"{theirs}.attn.c_proj.bias"] = p[f"{attn}.out.bias"].copy()         # (C,)
        state[f"{theirs}.ln_2.weight"] = p[f"{ours}.ffn.norm.gamma"].copy()
        state[f"{theirs}.ln_2.bias"] = p[f"{ours}.ffn.norm.beta"].copy()
        state[f"{theirs}.mlp.c_fc.weight"] = p[f"{ours}.ffn.sublayer.fc1.weight"].copy()    # (C, F)
        state[f"{theirs}.mlp.c_fc.bias"] = p[f"{ours}.ffn.sublayer.fc1.bias"].copy()        # (F,)
        state[f"{theirs}.mlp.c_proj.weight"] = p[f"{ours}.ffn.sublayer.fc2.weight"].copy()  # (F, C)
        state[f"{theirs}.mlp.c_proj.bias"] = p[f"{ours}.ffn.sublayer.fc2.bias"].copy()      # (C,)
    state[f"{prefix}ln_f.weight"] = p["final_norm.gamma"].copy()
    state[f"{prefix}ln_f.bias"] = p["final_norm.beta"].copy()
    if not model.config.tie_weights:
        state["lm_head.weight"] = p["head.weight"].copy()                         # (V, C)
    return state


def import_gpt2_state_dict(state, num_heads, dtype=None, activation="gelu_tanh", layer_norm_eps=1e-5):
    """A GPT from {GPT-2 name: array} (numpy, or anything np.asarray accepts). The inverse of
    export_gpt2_state_dict. Sizes are read from the shapes; the number of heads is not in the
    weights, so it must be given. A "transformer." prefix is accepted; GPT-2's attention-mask
    buffers (attn.bias, attn.masked_bias) are ignored. lm_head.weight, when present and different
    from wte, gives an untied head."""
    state = {(name[len("transformer."):] if name.startswith("transformer.") else name): np.asarray(value)
             for name, value in state.items()}
    for required in ("wte.weight", "wpe.weight", "ln_f.weight", "h.0.attn.c_attn.weight"):
        if required not in state:
            raise ValueError(f"not a GPT-2 state dict: {required!r} is missing")
    V, C = state["wte.weight"].shape
    max_len = state["wpe.weight"].shape[0]
    num_layers = 1 + max(int(name.split(".")[1]) for name in state if name.startswith("h."))
    F = state["h.0.mlp.c_fc.weight"].shape[1]
    head = state.get("lm_head.weight")
    tied = head is None or np.array_equal(head, state["wte.weight"])
    dtype = dtype or str(state["wte.weight"].dtype)
    config = GPTConfig(vocab_size=V, max_len=max_len, width=C, num_heads=num_heads, num_layers=num_layers,
                       ffn_hidden=F, activation=activation, positional="learned", pre_norm=True,
                       tie_weights=tied, layer_norm_eps=layer_norm_eps, dtype=dtype)
    model = GPT(config)
    ours = {}
    for i in range(num_layers):
        theirs, attn = f"h.{i}", f"blocks.{i}.attn.sublayer"
        c_attn_w = state[f"{theirs}.attn.c_attn.weight"]                         # (C, 3C)
        c_attn_b = state[f"{theirs}.attn.c_attn.bias"]                           # (3C,)
        if c_attn_w.shape != (C, 3 * C):
            raise ValueError(f"{theirs}.attn.c_attn.weight has shape {c_attn_w.shape}, expected {(C, 3 * C)}")
        for j, part in enumerate(("query", "key", "value")):
            ours[f"{attn}.{part}.weight"] = c_attn_w[:, j * C:(j + 1) * C]       # (C, C)
            ours[f"{attn}.{part}.bias"] = c_attn_b[j * C:(j + 1) * C]            # (C,)
        ours[f"{attn}.out.weight"] = state[f"{theirs}.attn.c_proj.weight"]
        ours[f"{attn}.out.bias"] = state[f"{theirs}.attn.c_proj.bias"]
        for norm, ln in (("attn.norm", "ln_1"), ("ffn.norm", "ln_2")):
            ours[f"blocks.{i}.{norm}.gamma"] = state[f"{theirs}.{ln}.weight"]
            ours[f"blocks.{i}.{norm}.beta"] = state[f"{theirs}.{ln}.bias"]
        for fc, mlp in (("fc1", "c_fc"), ("fc2", "c_proj")):
            ours[f"blocks.{i}.ffn.sublayer.{fc}.weight"] = state[f"{theirs}.mlp.{mlp}.weight"]
            ours[f"blocks.{i}.ffn.sublayer.{fc}.bias"] = state[f"{theirs}.mlp.{mlp}.bias"]
    ours["embed.tokens.weight"] = state["wte.weight"]
    ours["embed.positions.weight"] = state["wpe.weight"]
    ours["final_norm.gamma"] = state["ln_f.weight"]
    ours["final_norm.beta"] = state["ln_f.bias"]
    if not tied:
        ours["head.weight"] = head
    copy_parameters(model, ours, "GPT-2 state dict")
    return model
