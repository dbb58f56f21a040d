"""Checkpoints: everything needed to rebuild a model, resume its training or sample from it, in ONE .npz.

Inside the .npz (a zip of .npy arrays; read with allow_pickle=False, so loading runs no code):

    "format_version"      int, CHECKPOINT_VERSION
    "meta"                one JSON string:
                          {"format_version", "family": "gpt" | "encoder" | "transformer",
                           "model_config": {...}, "step": int, "rng_state": bit_generator.state,
                           "tokenizer": tokenizer.to_json() or null, "extra": {...} (train config,
                           data settings, metrics history)}
    "param/<dotted name>" every parameter array, as model.parameters() names it
    "optim/<key>"         the optimiser's state_dict() (moments, step count)

The file is written atomically: to a temporary file in the same folder, flushed to disk, then
renamed over the target with os.replace. A crash or Ctrl-C while saving leaves the previous
checkpoint intact, never half a file.
"""
import dataclasses
import json
import os
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .atomic import atomic_open
from .layers.base import copy_arrays_into
from .models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig

CHECKPOINT_VERSION = 1
MODEL_FAMILIES = {
    "gpt": (GPT, GPTConfig),
    "encoder": (Encoder, EncoderConfig),
    "transformer": (Transformer, TransformerConfig),
}


def family_of(model):
    """"gpt", "encoder" or "transformer" for a model instance."""
    for name, (model_class, _) in MODEL_FAMILIES.items():
        if type(model) is model_class:
            return name
    raise ValueError(f"no checkpoint family for model type {type(model).__name__}")


def build_model(family, config_dict):
    """A fresh model of `family` from a config dict (unknown or missing fields: ValueError)."""
    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; choose one of {sorted(MODEL_FAMILIES)}")
    model_class, config_class = MODEL_FAMILIES[family]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(config_dict) - known)
    if unknown:
        raise ValueError(f"{family} config has unknown fields {unknown}")
    return model_class(config_class(**config_dict))


@dataclass
class Checkpoint:
    """A loaded checkpoint: plain arrays and dicts, not yet attached to any model."""
    family: str
    model_config: dict
    step: int
    rng_state: dict | None
    tokenizer: dict | None
    extra: dict
    params: dict = field(repr=False)          # {name: array}
    optim_state: dict = field(repr=False)     # {key: array}; empty if saved without an optimiser

    def build_model(self):
        """The model with these weights."""
        model = build_model(self.family, self.model_config)
        load_params(model, self.params)
        return model

    def make_rng(self):
        """A np.random.Generator in exactly the saved state (None if none was saved)."""
        if self.rng_state is None:
            return None
        rng = np.random.default_rng()
        rng.bit_generator.state = self.rng_state
        return rng


def save_checkpoint(path, model, optimizer=None, step=0, rng=None, tokenizer=None, extra=None):
    """Write the model (and optimiser, step, generator state, tokenizer, extra JSON) to `path` atomically."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    meta = {
        "format_version": CHECKPOINT_VERSION,
        "family": family_of(model),
        "model_config": dataclasses.asdict(model.config),
        "step": int(step),
        "rng_state": None if rng is None else rng.bit_generator.state,
        "tokenizer": None if tokenizer is None else tokenizer.to_json(),
        "extra": extra or {},
    }
    arrays = {"format_version": np.array(CHECKPOINT_VERSION), "meta": np.array(json.dumps(meta))}
    for name, value in model.parameters().items():
        arrays[f"param/{name}"] = value
    if optimizer is not None:
        for key, value in optimizer.state_dict().items():
            arrays[f"optim/{key}"] = value
    with atomic_open(path, "wb") as f:                 # temporary file, fsync, then os.replace
        np.savez(f, **arrays)
    return path


def load_checkpoint(path):
    """Read and check a checkpoint file; ValueError with the reason for anything wrong with it."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}       # reading each member checks its CRC
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as err:
        raise ValueError(f"checkpoint {path!r} is truncated or corrupted ({type(err).__name__}: {err})") from None
    if "format_version" not in arrays or "meta" not in arrays:
        raise ValueError(f"{path!r} is not a numpy_transformer checkpoint (no format_version/meta entries)")
    version = int(arrays["format_version"])
    if version != CHECKPOINT_VERSION:
        raise ValueError(f"checkpoint {path!r} has format version {version}; this code reads version "
                         f"{CHECKPOINT_VERSION}")
    try:
        meta = json.loads(str(arrays["meta"]))
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint {path!r} is corrupted: its metadata is not valid JSON ({err})") from None
    params = {key[len("param/"):]: value for key, value in arrays.items() if key.startswith("param/")}
    optim_state = {key[len("optim/"):]: value for key, value in arrays.items() if key.startswith("optim/")}
    if meta.get("family") not in MODEL_FAMILIES:
        raise ValueError(f"checkpoint {path!r} has unknown model family {meta.get('family')!r}")
    return Checkpoint(meta["family"], meta["model_config"], meta["step"], meta.get("rng_state"),
                      meta.get("tokenizer"), meta.get("extra", {}), params, optim_state)


def config_differences(saved, current):
    """[(field, saved value, current value)] where two config dicts disagree."""
    keys = sorted(set(saved) | set(current))
    return [(key, saved.get(key), current.get(key)) for key in keys if saved.get(key) != current.get(key)]


def check_compatible(checkpoint, model):
    """ValueError unless `model` has the checkpoint's family and config (so its weights fit)."""
    family = family_of(model)
    if checkpoint.family != family:
        raise ValueError(f"checkpoint holds a {checkpoint.family} model, not a {family}")
    # the init seed does not matter once the saved weights are loaded; every other field does
    differences = [d for d in config_differences(checkpoint.model_config, dataclasses.asdict(model.config))
                   if d[0] != "seed"]
    if differences:
        shown = ", ".join(f"{key}={saved!r} (this run: {current!r})" for key, saved, current in differences[:4])
        raise ValueError(f"checkpoint was saved with a different model config: {shown}")


def load_params(model, params):
    """Copy saved arrays into the model's parameters IN PLACE; ValueError naming any mismatch."""
    copy_arrays_into(model.parameters(), params, "checkpoint parameters do not match the model")
