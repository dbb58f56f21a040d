"""The thin shell around every layer's pure forward/backward pair.

A layer keeps three dictionaries-worth of state, all plain attributes you can print in a debugger:

    params  : {name: array}   the weights, owned by this layer
    dparams : {name: array}   their gradients, same names and shapes; backward ADDS into them (+=)
    cache  : whatever the pure forward returned for its backward, or None before forward

Children are listed explicitly by each layer's ``children()``; dotted names such as
``blocks.0.attn.query.weight`` are built by walking them. There is no registry magic: stepping
into ``model.backward()`` lands in this project's own code, one frame per layer.
"""
import numpy as np


class Layer:
    """Base class: parameters, accumulated gradients, a cache, and a train/eval flag."""

    def __init__(self):
        self.params = {}      # {name: array}, owned here
        self.dparams = {}     # {name: dL/dparam}, same shapes as params, accumulated by backward
        self.cache = None     # set by forward, consumed (and cleared) by backward
        self.training = True  # only Dropout looks at this

    # --- composition -------------------------------------------------------------------------
    def children(self):
        """Sub-layers as a list of (name, layer). Leaf layers have none."""
        return []

    def add_param(self, name, value):
        """Register a parameter array and a zeroed gradient of the same shape and dtype."""
        self.params[name] = value
        self.dparams[name] = np.zeros_like(value)
        return value

    def named_layers(self, prefix=""):
        """Yield (dotted_name, layer) for this layer and every descendant, depth first."""
        yield prefix, self
        for child_name, child in self.children():
            child_prefix = f"{prefix}.{child_name}" if prefix else child_name
            yield from child.named_layers(child_prefix)

    def parameters(self):
        """{dotted name: parameter array}: views of the layers' own arrays (update them in place)."""
        out = {}
        for layer_name, layer in self.named_layers():
            for param_name, value in layer.params.items():
                out[f"{layer_name}.{param_name}" if layer_name else param_name] = value
        return out

    def grads(self):
        """{dotted name: gradient array}, same keys as parameters()."""
        out = {}
        for layer_name, layer in self.named_layers():
            for param_name, value in layer.dparams.items():
                out[f"{layer_name}.{param_name}" if layer_name else param_name] = value
        return out

    def zero_grad(self):
        """Set every gradient in this layer and its children to zero, in place."""
        for _, layer in self.named_layers():
            for grad in layer.dparams.values():
                grad[...] = 0

    def train(self):
        """Training mode (dropout active) for this layer and its children."""
        for _, layer in self.named_layers():
            layer.training = True
        return self

    def eval(self):
        """Evaluation mode (dropout is the identity) for this layer and its children."""
        for _, layer in self.named_layers():
            layer.training = False
        return self

    def num_parameters(self):
        return sum(p.size for p in self.parameters().values())

    # --- the cache --------------------------------------------------------------------------
    def pop_cache(self):
        """Return the cache left by forward and clear it; a clear error if forward did not run."""
        if self.cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward() called without a forward() before it "
                "(each forward's cache is used by exactly one backward)")
        cache = self.cache
        self.cache = None
        return cache

    def clear_caches(self):
        """Drop every cache in this layer and its children (after a forward whose backward won't run)."""
        for _, layer in self.named_layers():
            layer.cache = None

    def __repr__(self):
        shapes = ", ".join(f"{k}{tuple(v.shape)}" for k, v in self.params.items())
        return f"{type(self).__name__}({shapes})"


def check_float_dtype(dtype):
    """Return np.dtype(dtype), raising ValueError unless it is float32 or float64."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype {dtype} is not supported; use float32 or float64")
    return dtype


def copy_arrays_into(targets, values, what):
    """targets[name][...] = values[name] for every name, IN PLACE (parameters, optimiser state, loaded
    tensors), after checking that the names and shapes agree: a ValueError says what is missing,
    unexpected or misshaped. what: the source, for the message (a file, "optimiser state", ...)."""
    missing = sorted(set(targets) - set(values))
    unexpected = sorted(set(values) - set(targets))
    if missing or unexpected:
        raise ValueError(f"{what}: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
                         f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    for name, target in targets.items():
        value = np.asarray(values[name])
        if value.shape != target.shape:
            raise ValueError(f"{what}: {name!r} has shape {value.shape}, expected {target.shape}")
        target[...] = value
