"""Optimisers that update a model's parameter arrays IN PLACE from the gradients its backward left.

    SGD    v = mu v + g;                 p -= lr v                          (momentum mu; mu = 0 is plain SGD)
    Adam   m = b1 m + (1 - b1) g;        v = b2 v + (1 - b2) g^2
           m_hat = m / (1 - b1^t);       v_hat = v / (1 - b2^t)
           p -= lr m_hat / (sqrt(v_hat) + eps)                              (Kingma and Ba, 2015)
    AdamW  Adam, then the weight decay is applied to the weights directly, not through the gradient:
           p -= lr wd p   (only on the parameters that decay_mask() marks)   (Loshchilov and Hutter, 2019)

Every optimiser is built from ``model.parameters()`` and ``model.grads()``: two {dotted name: array}
dicts whose arrays ARE the layers' own arrays, so writing ``p -= ...`` trains the model.
The state (momenta, step count) is a flat {name: array} dict, ``state_dict()``, so a checkpoint can
save it in the same .npz as the weights.

Which parameters get weight decay (``decay_mask``): decay shrinks weights towards zero, which suits
the matrices that mix features (Linear weights), but not
  * biases and LayerNorm gains/shifts (1-D arrays: shrinking a gain towards 0 only fights the norm),
  * embedding tables (token, position, token-type) unless ``decay_embeddings=True``: most rows of a
    token table get no gradient in a given step, so decay would quietly erase rare tokens.
The rule is decided from the layer type that owns the parameter (Embedding, LearnedPositionalEmbedding)
and the array's ndim, so it does not depend on how a model names its children.
"""
import math

import numpy as np

from . import backend
from .flat import BufferFinder, zeros_like_each
from .layers.base import copy_arrays_into
from .layers.embedding import Embedding
from .layers.positional import LearnedPositionalEmbedding


def decay_mask(model, decay_embeddings=False):
    """{parameter name: True if weight decay applies to it}.

    False for every 1-D parameter (biases, LayerNorm gamma/beta); False for embedding tables unless
    decay_embeddings; True for every other matrix.
    """
    embedding_names = set()
    for layer_name, layer in model.named_layers():
        if isinstance(layer, (Embedding, LearnedPositionalEmbedding)):
            for param_name in layer.params:
                embedding_names.add(f"{layer_name}.{param_name}" if layer_name else param_name)
    mask = {}
    for name, value in model.parameters().items():
        if value.ndim < 2:
            mask[name] = False
        elif name in embedding_names:
            mask[name] = decay_embeddings
        else:
            mask[name] = True
    return mask


def global_grad_norm(grads):
    """sqrt(sum over every gradient array of the sum of its squares), as a Python float."""
    total = 0.0
    for grad in grads.values():
        total += float(np.sum(np.square(grad, dtype=np.float64)))
    return math.sqrt(total)


def clip_grad_norm(grads, max_norm):
    """Scale every gradient IN PLACE by min(1, max_norm / ||g||), ||g|| the global norm over all of them.

    Returns the norm BEFORE clipping (what a training log wants to show). max_norm <= 0 or None
    means no clipping. One scale for all arrays keeps the update's direction.
    """
    norm = global_grad_norm(grads)
    if max_norm is None or max_norm <= 0:
        return norm
    if norm > max_norm:
        scale = max_norm / (norm + 1e-6)           # Python float: keeps float32 gradients float32
        for grad in grads.values():
            grad *= scale
    return norm


class Optimizer:
    """The shared part: the model's arrays, the decay mask, a step counter and state save/load."""

    def __init__(self, model, lr, weight_decay=0.0, decay_embeddings=False):
        if not lr > 0:
            raise ValueError(f"learning rate must be positive, got {lr}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        self.params = model.parameters()            # {name: array}, the model's own arrays
        self.grads = model.grads()                  # {name: array}, filled by model.backward()
        self.lr = lr
        self.weight_decay = weight_decay
        self.decay = decay_mask(model, decay_embeddings)
        self.t = 0                                   # number of steps taken
        self.slots = {}                              # {slot name: {param name: array}}, e.g. "m", "v"

    def new_slot(self, slot):
        """A zero array per parameter, same shape and dtype (float32 training keeps float32 state); all of them
        views of one buffer, laid out like the parameters (flat.py)."""
        self.slots[slot] = zeros_like_each(self.params)
        return self.slots[slot]

    def step(self, lr=None):
        """One update of every parameter from its gradient; lr overrides self.lr (a schedule's value)."""
        lr = self.lr if lr is None else float(lr)
        self.t += 1
        if self.update_all(lr):
            return
        for name, param in self.params.items():
            self.update(name, param, self.grads[name], lr)

    def update(self, name, param, grad, lr):
        raise NotImplementedError

    def update_all(self, lr):
        """Every parameter at once, where an optimiser has a faster way to do that: True if done."""
        return False

    # --- checkpoints -------------------------------------------------------------------
    def state_dict(self):
        """{"t": array(t), "<slot>.<param name>": array}: flat, so it can go straight into an .npz."""
        state = {"t": np.array(self.t, dtype=np.int64)}
        for slot, arrays in self.slots.items():
            for name, value in arrays.items():
                state[f"{slot}.{name}"] = value
        return state

    def load_state_dict(self, state):
        """Copy a state_dict() back IN PLACE; ValueError naming any missing, extra or misshaped entry."""
        expected = self.state_dict()                  # views of the slots, plus a fresh copy of t
        copy_arrays_into(expected, state, "optimiser state does not match this optimiser")
        self.t = int(state["t"])


class SGD(Optimizer):
    """p -= lr v with v = momentum v + (g + wd p); wd only where decay_mask says."""

    def __init__(self, model, lr=0.1, momentum=0.9, weight_decay=0.0, decay_embeddings=False):
        super().__init__(model, lr, weight_decay, decay_embeddings)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self.velocity = self.new_slot("velocity")

    def update(self, name, param, grad, lr):
        if self.weight_decay and self.decay[name]:
            grad = grad + self.weight_decay * param                      # L2 through the gradient
        velocity = self.velocity[name]
        velocity *= self.momentum
        velocity += grad                                                 # v = mu v + g
        param -= lr * velocity                                           # p -= lr v


class Adam(Optimizer):
    """Adam with bias correction. weight_decay here is the classic L2 term added to the gradient."""

    decoupled = False

    def __init__(self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 decay_embeddings=False):
        super().__init__(model, lr, weight_decay, decay_embeddings)
        for label, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{label} must be in [0, 1), got {beta}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = self.new_slot("m")                                      # first moment, E[g]
        self.v = self.new_slot("v")                                      # second moment, E[g^2]
        self.buffer_finders = [BufferFinder() for _ in range(4)]         # for update_all: params, grads, m, v
        sizes = [param.size for param in self.params.values()]
        self.segment_bounds = np.cumsum([0] + sizes)                     # where each parameter begins in a buffer
        self.segment_decays = np.array([self.decay[name] for name in self.params], dtype=bool)   # (weight_decay 0: none)

    def update_all(self, lr):
        """On the Numba backend, when the parameters, their gradients and both moments each lie in one buffer
        in the same order (flat.py), one kernel call updates them all: the same arithmetic as update, entry by
        entry, so the same bits."""
        if backend.get_backend() != "numba":
            return False
        names = list(self.params)                                        # every list in the parameters' order
        arrays = [[table[name] for name in names] for table in (self.params, self.grads, self.m, self.v)]
        buffers = [find(values) for find, values in zip(self.buffer_finders, arrays)]
        if any(buffer is None or buffer.size != self.segment_bounds[-1] for buffer in buffers):
            return False
        from .kernels.optim import adam_update_segments                  # (kernels/optim.py)
        adam_update_segments(*buffers, self.segment_bounds, self.segment_decays, lr, self.beta1, self.beta2,
                             self.eps, self.t, self.weight_decay, self.decoupled)
        return True

    def update(self, name, param, grad, lr):
        decays = self.weight_decay > 0 and self.decay[name]
        if backend.get_backend() == "numba":                              # the same update, one fused pass
            from .kernels.optim import adam_update                       # (kernels/optim.py)
            if adam_update(param, grad, self.m[name], self.v[name], lr, self.beta1, self.beta2, self.eps,
                           self.t, self.weight_decay if decays else 0.0, self.decoupled):
                return
        if decays and not self.decoupled:
            grad = grad + self.weight_decay * param                      # Adam + L2
        # ==== exercise 12 adamw ====
        m, v = self.m[name], self.v[name]
        m *= self.beta1
        m += (1.0 - self.beta1) * grad                                   # m = b1 m + (1 - b1) g
        v *= self.beta2
        v += (1.0 - self.beta2) * (grad * grad)                          # v = b2 v + (1 - b2) g^2
        m_correction = 1.0 - self.beta1 ** self.t                        # Python floats keep float32
        v_correction = 1.0 - self.beta2 ** self.t
        m_hat = m / m_correction                                         # same shape as param
        v_hat = v / v_correction
        if decays and self.decoupled:
            param -= (lr * self.weight_decay) * param                    # AdamW: shrink the weight itself
        param -= lr * m_hat / (np.sqrt(v_hat) + self.eps)
        # ==== end exercise 12 ====


class AdamW(Adam):
    """Adam with decoupled weight decay: p -= lr * wd * p, separate from the adaptive step."""

    decoupled = True

    def __init__(self, model, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                 decay_embeddings=False):
        super().__init__(model, lr, beta1, beta2, eps, weight_decay, decay_embeddings)


OPTIMIZERS = ("sgd", "adam", "adamw")


def make_optimizer(model, name="adamw", lr=1e-3, momentum=0.9, beta1=0.9, beta2=0.99, eps=1e-8,
                   weight_decay=0.0, decay_embeddings=False):
    """Build an optimiser by name ("sgd", "adam" or "adamw") for the model's parameters."""
    if name == "sgd":
        return SGD(model, lr, momentum, weight_decay, decay_embeddings)
    if name == "adam":
        return Adam(model, lr, beta1, beta2, eps, weight_decay, decay_embeddings)
    if name == "adamw":
        return AdamW(model, lr, beta1, beta2, eps, weight_decay, decay_embeddings)
    raise ValueError(f"unknown optimiser {name!r}; choose one of {OPTIMIZERS}")
