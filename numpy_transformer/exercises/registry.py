"""The exercise ladder, in course order.

Each exercise is one or more fenced regions in the library source:

    # ==== exercise NN slug ====        e.g. NN = 01, slug = linear-backward
    ...solution lines...
    # ==== end exercise NN ====

The student copy replaces each region with a NotImplementedError naming the exercise and where to
read. Every exercise has a section in docs/exercises.md, a pytest marker (``ex01`` ...) on the tests
that check it, and a check in exercises/checks.py that the grader runs.
"""
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exercise:
    number: str                 # "01": the order in the course, and the pytest marker ex01
    slug: str                   # "linear-backward": the name in messages, docs and --exercise
    title: str
    files: tuple                # source files holding its fenced regions (relative to the repo root)
    read: str                   # where to read before starting
    minutes: int                # a time estimate for a student who did the prerequisites
    requires: tuple = field(default=())   # exercise numbers it builds on

    @property
    def id(self):
        return f"{self.number}-{self.slug}"

    @property
    def marker(self):
        return f"ex{self.number}"


LADDER = (
    Exercise("01", "linear-backward", "Backward of a linear layer", ("numpy_transformer/layers/linear.py",),
             "docs/derivations/linear.md", 20),
    Exercise("02", "activation-backward", "Backward of ReLU and GELU (exact and tanh)",
             ("numpy_transformer/layers/activations.py",), "docs/derivations/activations.md", 25),
    Exercise("03", "softmax", "A numerically stable, maskable softmax and its backward",
             ("numpy_transformer/layers/softmax.py",), "docs/derivations/softmax.md", 30),
    Exercise("04", "cross-entropy", "Softmax cross-entropy, fused: stable log-softmax, mean loss, backward",
             ("numpy_transformer/layers/loss.py",), "docs/derivations/cross_entropy.md", 30, ("03",)),
    Exercise("05", "embedding-backward", "Backward of an embedding lookup with repeated ids",
             ("numpy_transformer/layers/embedding.py",), "docs/derivations/embedding.md", 15),
    Exercise("06", "positional-encoding", "The paper's sinusoidal positional encoding",
             ("numpy_transformer/layers/positional.py",), "docs/derivations/embedding.md", 20),
    Exercise("07", "layernorm", "LayerNorm forward and backward", ("numpy_transformer/layers/layernorm.py",),
             "docs/derivations/layernorm.md", 45),
    Exercise("08", "attention-forward", "Scaled dot-product attention with causal and padding masks",
             ("numpy_transformer/layers/attention.py",), "docs/derivations/attention.md", 40, ("03",)),
    Exercise("09", "attention-backward", "Backward of scaled dot-product attention",
             ("numpy_transformer/layers/attention.py",), "docs/derivations/attention.md", 45, ("03", "08")),
    Exercise("10", "multihead-split-merge", "Splitting width into heads and merging them back",
             ("numpy_transformer/layers/multihead.py",), "docs/derivations/attention.md", 20),
    Exercise("11", "residual-backward", "Backward of a residual block, pre-LN and post-LN",
             ("numpy_transformer/layers/residual.py",), "docs/derivations/residual.md", 25, ("01", "07")),
    Exercise("12", "adamw", "The AdamW update with decoupled weight decay", ("numpy_transformer/optim.py",),
             "docs/exercises.md#12-adamw", 30),
    Exercise("13", "sampling", "Temperature, top-k and top-p (nucleus) filtering",
             ("numpy_transformer/generate.py",), "docs/exercises.md#13-sampling", 30),
    Exercise("14", "kv-cache", "A key/value cache for fast generation", ("numpy_transformer/layers/multihead.py",),
             "docs/exercises.md#14-kv-cache", 30, ("03", "07", "08", "10")),
)

BY_ID = {}
for _exercise in LADDER:
    BY_ID[_exercise.number] = BY_ID[_exercise.slug] = BY_ID[_exercise.id] = _exercise


def find(name):
    """An exercise by number ("01"), slug ("linear-backward") or id ("01-linear-backward")."""
    key = str(name).strip()
    if key.isdigit():
        key = key.zfill(2)
    if key not in BY_ID:
        known = ", ".join(e.id for e in LADDER)
        raise ValueError(f"unknown exercise {name!r}; known: {known}")
    return BY_ID[key]
