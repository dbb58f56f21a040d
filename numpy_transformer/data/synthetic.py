"""Synthetic sequence tasks, generated in code from a seed: copy, reverse, sort, addition.

Every example is a pair of digit strings, source -> target:

    copy      "3172"        -> "3172"        (n_repeats=2: "31723172")
    reverse   "3172"        -> "2713"
    sort      "3172"        -> "1237"
    addition  "031+472"     -> "0503"        (operands zero-padded to n_digits, sum to n_digits + 1)

Each task has a *known right attention pattern*: which source position(s) a model must look at
to write target position i. It is what a trained model's cross-attention (encoder-decoder), or
its attention from the target part back to the source part (decoder-only), should come to look
like, and ``SyntheticTask.known_attention(k)`` gives it as a (len(target), len(source)) matrix
whose rows sum to 1 (the weight is spread evenly where several positions are equally right).

Two views of the same examples:
  * language-model: ``lm_text()`` is "3172=2713\\n3390=0933\\n..." for any tokenizer, and
    ``lm_arrays()`` gives <bos> source = target <eos> as ids, with a mask of the target positions
    (only those are predictable; the source digits are random).
  * source/target: ``pairs()`` as strings, ``seq2seq_arrays()`` as id arrays.
All tasks share one small vocabulary, ``synthetic_tokenizer()``: the characters "\\n+0123456789="
and the special tokens <pad>, <bos>, <eos> (16 ids).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .char import CharTokenizer

SYNTHETIC_CHARS = "\n+0123456789="
SYNTHETIC_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")


def synthetic_tokenizer() -> CharTokenizer:
    """The shared vocabulary: "\\n", "+", digits, "=" (ids 0..12), then <pad> 13, <bos> 14, <eos> 15."""
    return CharTokenizer(SYNTHETIC_CHARS, special_tokens=list(SYNTHETIC_SPECIAL_TOKENS))


@dataclass
class SyntheticTask:
    """Examples of one task, and the task's rule and attention pattern.

    Fields:
        name: "copy", "reverse", "sort" or "addition".
        sources, targets: the examples as digit strings; targets[k] == solve(sources[k]).
        solve: the rule, source string -> right target string (use it to score a model's output).
        attention: source string -> (len(target), len(source)) known right attention pattern.
        description: one line saying what the pattern is.
    """

    name: str
    sources: list[str]
    targets: list[str]
    solve: Callable[[str], str]
    attention: Callable[[str], np.ndarray]
    description: str
    tokenizer: CharTokenizer = field(default_factory=synthetic_tokenizer)

    def __len__(self) -> int:
        return len(self.sources)

    def pairs(self) -> list[tuple[str, str]]:
        """[(source, target), ...] as strings."""
        return list(zip(self.sources, self.targets))

    def lm_text(self) -> str:
        """All examples as one text, one "source=target" per line, for any tokenizer."""
        return "".join(f"{s}={t}\n" for s, t in self.pairs())

    def lm_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Decoder-only view: ids (N, L) = <bos> source "=" target <eos>, and loss_mask (N, L).

        loss_mask[n, t] is True where token t belongs to the target or is <eos>: the tokens a
        model can be asked to predict. To train: x = ids[:, :-1], y = ids[:, 1:],
        weight the loss by loss_mask[:, 1:]. Lengths are equal within a task, so no padding.
        Source character j sits at position 1 + j, target character i at 2 + len(source) + i.
        """
        tok = self.tokenizer
        bos = tok.token_to_id("<bos>")
        eos = tok.token_to_id("<eos>")
        rows = []
        masks = []
        for source, target in self.pairs():
            prompt = [bos] + tok.encode(source + "=")                  # not predictable
            answer = tok.encode(target) + [eos]                        # predictable
            rows.append(prompt + answer)
            masks.append([False] * len(prompt) + [True] * len(answer))
        ids = np.array(rows, dtype=np.int64)                           # (N, L)
        loss_mask = np.array(masks, dtype=bool)                        # (N, L)
        return ids, loss_mask

    def seq2seq_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Encoder-decoder view: src (N, S) source ids, tgt (N, T + 2) = <bos> target <eos>.

        Decoder input is tgt[:, :-1], its labels tgt[:, 1:]. Source position j is character j.
        """
        tok = self.tokenizer
        bos = tok.token_to_id("<bos>")
        eos = tok.token_to_id("<eos>")
        src = np.array([tok.encode(s) for s in self.sources], dtype=np.int64)                  # (N, S)
        tgt = np.array([[bos] + tok.encode(t) + [eos] for t in self.targets], dtype=np.int64)  # (N, T+2)
        return src, tgt

    def known_attention(self, k: int) -> np.ndarray:
        """(len(targets[k]), len(sources[k])) known right attention pattern of example k."""
        if not 0 <= k < len(self.sources):
            raise ValueError(f"example index {k} outside 0..{len(self.sources) - 1}")
        return self.attention(self.sources[k])


# ---- argument checks --------------------------------------------------------------------

def _check_positive_int(name: str, value, largest=None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    if largest is not None and value > largest:
        raise ValueError(f"{name} {value} is larger than the largest allowed, {largest}")


def _random_digit_strings(n_examples: int, length: int, n_symbols: int, seed) -> list[str]:
    """n_examples strings of `length` digits drawn uniformly from "0".."n_symbols-1"."""
    rng = np.random.default_rng(seed)
    digits = rng.integers(0, n_symbols, size=(n_examples, length))    # (N, length)
    return ["".join(str(d) for d in row) for row in digits]


def _rows_normalised(pattern: np.ndarray) -> np.ndarray:
    """Divide each row by its sum so that it is a distribution over source positions."""
    return pattern / pattern.sum(axis=1, keepdims=True)


# ---- the tasks --------------------------------------------------------------------------

def copy_task(n_examples: int, length: int, seed: int = 0, n_symbols: int = 10,
              n_repeats: int = 1) -> SyntheticTask:
    """Copy (repeat) a random digit string: target = source * n_repeats.

    Known right attention: target position i attends to source position i mod n (n = length):
    the identity diagonal, repeated n_repeats times down the rows.
    """
    _check_positive_int("n_examples", n_examples)
    _check_positive_int("length", length)
    _check_positive_int("n_symbols", n_symbols, largest=10)
    _check_positive_int("n_repeats", n_repeats)

    def solve(source: str) -> str:
        return source * n_repeats

    def attention(source: str) -> np.ndarray:
        n = len(source)
        pattern = np.zeros((n * n_repeats, n))                         # (T, S)
        for i in range(n * n_repeats):
            pattern[i, i % n] = 1.0
        return pattern

    sources = _random_digit_strings(n_examples, length, n_symbols, seed)
    return SyntheticTask("copy", sources, [solve(s) for s in sources], solve, attention,
                         "target i attends to source i mod n (diagonal)")


def reverse_task(n_examples: int, length: int, seed: int = 0, n_symbols: int = 10) -> SyntheticTask:
    """Reverse a random digit string: target[i] = source[n - 1 - i].

    Known right attention: target position i attends to source position n - 1 - i
    (the anti-diagonal).
    """
    _check_positive_int("n_examples", n_examples)
    _check_positive_int("length", length)
    _check_positive_int("n_symbols", n_symbols, largest=10)

    def solve(source: str) -> str:
        return source[::-1]

    def attention(source: str) -> np.ndarray:
        n = len(source)
        pattern = np.zeros((n, n))                                     # (T, S)
        for i in range(n):
            pattern[i, n - 1 - i] = 1.0
        return pattern

    sources = _random_digit_strings(n_examples, length, n_symbols, seed)
    return SyntheticTask("reverse", sources, [solve(s) for s in sources], solve, attention,
                         "target i attends to source n-1-i (anti-diagonal)")


def sort_task(n_examples: int, length: int, seed: int = 0, n_symbols: int = 10) -> SyntheticTask:
    """Sort the digits of a random string in ascending order.

    Known right attention: target position i attends to the source positions that hold the
    digit target[i] (the i-th smallest), spread evenly over ties, since equal digits are
    interchangeable. It is a permutation matrix when all digits differ, and depends on the
    example, unlike copy and reverse.
    """
    _check_positive_int("n_examples", n_examples)
    _check_positive_int("length", length)
    _check_positive_int("n_symbols", n_symbols, largest=10)

    def solve(source: str) -> str:
        return "".join(sorted(source))

    def attention(source: str) -> np.ndarray:
        target = solve(source)
        source_chars = np.array(list(source))                          # (S,)
        target_chars = np.array(list(target))                          # (T,)
        pattern = (target_chars[:, None] == source_chars[None, :]).astype(np.float64)  # (T, S)
        return _rows_normalised(pattern)

    sources = _random_digit_strings(n_examples, length, n_symbols, seed)
    return SyntheticTask("sort", sources, [solve(s) for s in sources], solve, attention,
                         "target i attends to the source positions holding the i-th smallest digit")


def addition_task(n_examples: int, n_digits: int, seed: int = 0) -> SyntheticTask:
    """Multi-digit addition: "a+b" -> a + b, operands zero-padded to n_digits, the sum to n_digits + 1.

    Layout for n = n_digits: source = a's n digits, "+", b's n digits (length 2n + 1), most
    significant first; target = the n + 1 digits of the sum, most significant first.
    The digit of place value 10**p sits at source index n-1-p (in a), 2n-p (in b), and at
    target index n-p.

    Known right attention: the target digit of place p depends on a and b at place p and on the
    carry coming from place p - 1, so it attends to a and b at places p and p-1 (whichever
    exist), evenly. (A carry can ripple from further down, e.g. 0999+0001, but the place below
    tells which places matter; the target digit of place n is the carry alone.)
    """
    _check_positive_int("n_examples", n_examples)
    _check_positive_int("n_digits", n_digits, largest=18)  # 10**18 < 2**63: int64 operands
    n = n_digits

    def solve(source: str) -> str:
        left, right = source.split("+")
        return f"{int(left) + int(right):0{n + 1}d}"

    def attention(source: str) -> np.ndarray:
        pattern = np.zeros((n + 1, 2 * n + 1))                         # (T, S)
        for p in range(n + 1):                                         # place value 10**p
            row = n - p
            for place in (p, p - 1):
                if 0 <= place < n:
                    pattern[row, n - 1 - place] = 1.0                  # digit of a
                    pattern[row, 2 * n - place] = 1.0                  # digit of b
        return _rows_normalised(pattern)

    rng = np.random.default_rng(seed)
    operands = rng.integers(0, 10 ** n, size=(n_examples, 2))          # (N, 2)
    sources = [f"{a:0{n}d}+{b:0{n}d}" for a, b in operands.tolist()]
    return SyntheticTask("addition", sources, [solve(s) for s in sources], solve, attention,
                         "sum digit of place p attends to both operands' digits at places p and p-1")


TASKS = {
    "copy": copy_task,
    "reverse": reverse_task,
    "sort": sort_task,
    "addition": addition_task,
}


def make_task(name: str, n_examples: int, size: int, seed: int = 0, **options) -> SyntheticTask:
    """A task by name; size is the string length (copy/reverse/sort) or n_digits (addition)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {sorted(TASKS)}")
    return TASKS[name](n_examples, size, seed=seed, **options)
