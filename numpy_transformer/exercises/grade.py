"""The offline autograder: runs each exercise on fixture inputs, compares with the expected numbers,
and when an answer is wrong, names the likely mistake.

It needs no solution code: the fixtures hold inputs, expected outputs, and the outputs of known
mistakes (numbers only), and the generic diagnoses (a transposed gradient, a constant factor,
overflow) are read off the student's numbers themselves.
"""
import json
import re
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .registry import LADDER, find

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures"
RTOL, ATOL = 1e-6, 1e-9            # float64 answers: a correct one agrees to ~1e-12
STUB = re.compile(r"exercise (\d\d)-([a-z0-9-]+) is yours to write")

MISTAKE_HINTS = {
    "transposed gradient": "the gradient has the transposed shape or values: for y = x W, dW = x^T dy, "
                           "shaped like W",
    "constant factor": "right up to a constant factor: a sum where a mean was meant (or the reverse), "
                       "or a missing scale such as 1/N or 1/sqrt(d_k)",
    "max not subtracted": "non-finite values on large logits: subtract each row's max before exp "
                          "(softmax is shift invariant, exp(1000) overflows)",
    "missing 1/sqrt(d_k)": "the scores were not divided by sqrt(d_k) (the head size)",
    "mask applied after the softmax": "masked entries were zeroed after the softmax, so rows no longer "
                                      "sum to 1: set masked scores to -inf before it",
    "repeated ids overwritten instead of accumulated": "a token that occurs twice must receive both "
                                                       "gradients: use np.add.at, not dweight[ids] = dout",
    "unbiased instead of biased variance": "LayerNorm divides by C (the biased variance), not C - 1",
    "sin and cos swapped": "even columns are sin, odd columns are cos",
    "weight decay added to the gradient (Adam + L2) instead of decoupled":
        "AdamW shrinks the weight directly (p -= lr * wd * p), outside the adaptive step; adding wd * p to "
        "the gradient is Adam with L2, which the moments then rescale",
    "no bias correction": "divide m by 1 - beta1^t and v by 1 - beta2^t: both start at zero and are "
                          "biased towards it in the first steps",
    "temperature multiplied instead of divided": "sharpening with temperature tau < 1 is softmax(z / tau)",
    "top-p drops the token that crosses p": "the nucleus is the SMALLEST set whose mass reaches p: keep "
                                            "the token that crosses the threshold",
}


@dataclass
class ExerciseResult:
    exercise: str
    title: str
    status: str                     # "passed" | "failed" | "not done" | "blocked" | "error"
    score: float                    # 0..1: the share of outputs that match
    checked: int = 0
    matched: int = 0
    messages: list = field(default_factory=list)
    mistakes: list = field(default_factory=list)


def load_fixture(number):
    path = FIXTURE_DIR / f"{number}.npz"
    if not path.exists():
        raise FileNotFoundError(f"no fixture for exercise {number} at {path}")
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def diagnose(got, expected, mistakes_for_output):
    """The name of the likely mistake for one wrong output, or None."""
    got = np.asarray(got, dtype=np.float64) if np.asarray(got).dtype != object else got
    for name, value in mistakes_for_output.items():
        if got.shape == value.shape and np.allclose(got, value, rtol=RTOL, atol=ATOL):
            return name
    if got.shape != expected.shape:
        if got.ndim >= 2 and got.shape == expected.shape[:-2] + expected.shape[-2:][::-1]:
            return "transposed gradient"
        return None
    if not np.all(np.isfinite(got)) and np.all(np.isfinite(expected)):
        return "max not subtracted"
    if got.ndim >= 2 and got.shape[-1] == got.shape[-2] and np.allclose(got, expected.swapaxes(-1, -2),
                                                                        rtol=RTOL, atol=ATOL):
        return "transposed gradient"
    denom = float(np.sum(expected * expected))
    if denom > 0:
        factor = float(np.sum(got * expected) / denom)
        if abs(factor - 1) > 1e-3 and abs(factor) > 1e-6 and np.allclose(got, factor * expected, rtol=RTOL, atol=ATOL):
            return "constant factor"
    return None


def run_exercise(exercise):
    """Grade one exercise; never raises (an exception in student code is reported, not thrown)."""
    from .. import backend
    from .cases import RUNNERS
    result = ExerciseResult(exercise.id, exercise.title, "passed", 0.0)
    if exercise.number not in RUNNERS:
        result.status, result.messages = "error", [f"no grader cases for exercise {exercise.id}"]
        return result
    fixture = load_fixture(exercise.number)
    try:
        with backend.use_backend("numpy"), np.errstate(all="ignore"):
            outputs = RUNNERS[exercise.number](fixture)
    except NotImplementedError as error:
        stub = STUB.search(str(error))
        if stub and stub.group(1) == exercise.number:
            result.status, result.messages = "not done", [f"{exercise.id} still raises NotImplementedError"]
        elif stub:
            result.status = "blocked"
            result.messages = [f"needs exercise {stub.group(1)}-{stub.group(2)} first (it raised NotImplementedError)"]
        else:
            result.status, result.messages = "not done", [f"NotImplementedError: {error}"]
        return result
    except Exception as error:  # noqa: BLE001 - student code may fail in any way; report it
        frame = traceback.extract_tb(error.__traceback__)[-1]
        result.status = "error"
        result.messages = [f"{type(error).__name__}: {error} (at {Path(frame.filename).name}:{frame.lineno})"]
        return result
    for name, got in outputs.items():
        expected = fixture[f"out_{name}"]
        result.checked += 1
        got_array = np.asarray(got)
        if got_array.shape == expected.shape and np.allclose(got_array, expected, rtol=RTOL, atol=ATOL):
            result.matched += 1
            continue
        mistakes = {key.split("|")[0][len("mistake_"):]: fixture[key] for key in fixture
                    if key.startswith("mistake_") and key.split("|")[1] == name}
        mistake = diagnose(got_array, expected, mistakes)
        if got_array.shape != expected.shape:
            detail = f"shape {got_array.shape}, expected {expected.shape}"
        else:
            error = np.abs(got_array - expected)
            worst = tuple(int(i) for i in np.unravel_index(np.nanargmax(np.where(np.isfinite(error), error, np.inf)),
                                                           error.shape))
            detail = f"max abs error {np.nanmax(np.where(np.isfinite(error), error, np.inf)):.3g} at index {worst}"
        line = f"{name}: wrong ({detail})"
        if mistake:
            line += f"; likely mistake: {mistake} — {MISTAKE_HINTS.get(mistake, '')}"
            if mistake not in result.mistakes:
                result.mistakes.append(mistake)
        result.messages.append(line)
    result.score = result.matched / result.checked if result.checked else 0.0
    result.status = "passed" if result.matched == result.checked else "failed"
    return result


def grade(exercises=None):
    """Grade the given exercises (default: the whole ladder). -> [ExerciseResult]."""
    chosen = LADDER if not exercises else [find(name) for name in exercises]
    return [run_exercise(exercise) for exercise in chosen]


def report(results):
    lines = []
    for r in results:
        counts = f"{r.matched}/{r.checked} outputs right" if r.checked else ""
        lines.append(f"{r.exercise:28s} {r.status:9s} score {r.score:.2f}  {counts}".rstrip())
        lines.extend(f"    {message}" for message in r.messages)
    total = sum(r.score for r in results)
    lines.append(f"total: {total:.2f} / {len(results)}  "
                 f"({sum(r.status == 'passed' for r in results)} of {len(results)} exercises passed)")
    return "\n".join(lines)


def write_json(results, path):
    """A machine-readable result for course platforms, written atomically."""
    payload = {"total": sum(r.score for r in results), "max": len(results),
               "exercises": [asdict(r) for r in results]}
    from ..atomic import atomic_open
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(payload, indent=2))
