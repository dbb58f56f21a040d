"""Learning-rate schedules: functions of the step number (0-based: the step about to be taken).

    constant       lr(s) = base_lr
    inverse_sqrt   lr(s) = base_lr * C^-0.5 * min(n^-0.5, n * warmup^-1.5),  n = s + 1
                   the 2017 paper's schedule (section 5.3): a linear warm-up for `warmup` steps, then
                   decay with the inverse square root of the step. The paper uses base_lr = 1 with
                   C = d_model = 512 and warmup = 4000, so its peak is 512^-0.5 * 4000^-0.5 = 7e-4.
                   Here base_lr multiplies the formula ("lr factor"), and the peak is reached at n = warmup.
    cosine         lr(s) = base_lr * n / warmup                                  while n < warmup
                   lr(s) = min_lr + (base_lr - min_lr) * (1 + cos(pi * p)) / 2   after, p = progress in [0, 1]
                   where p = (s - warmup) / (total - warmup), so lr reaches min_lr on the last step.
"""
import math

SCHEDULES = ("constant", "inverse_sqrt", "cosine")


def constant(step, base_lr):
    """base_lr at every step."""
    return base_lr


def inverse_sqrt(step, base_lr, warmup, width=0):
    """The paper's base_lr * C^-0.5 * min(n^-0.5, n * warmup^-1.5), n = step + 1.

    width = 0 drops the C^-0.5 factor, so base_lr is the peak learning rate (reached at n = warmup).
    """
    n = step + 1
    width_factor = width ** -0.5 if width > 0 else warmup ** 0.5   # width 0: peak equals base_lr
    return base_lr * width_factor * min(n ** -0.5, n * warmup ** -1.5)


def cosine(step, base_lr, warmup, total_steps, min_lr=0.0):
    """Linear warm-up to base_lr over `warmup` steps, then half a cosine down to min_lr at the last step."""
    n = step + 1
    if n < warmup:
        return base_lr * n / warmup
    decay_steps = max(total_steps - warmup, 1)
    progress = min(max(step - warmup + 1, 0) / decay_steps, 1.0)     # 0 after warm-up .. 1 at the end
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def learning_rate(step, name, base_lr, total_steps, warmup=0, min_lr=0.0, width=0):
    """The learning rate at `step` (0-based) for the schedule called `name` (one of SCHEDULES)."""
    if name == "constant":
        return constant(step, base_lr)
    if name == "inverse_sqrt":
        return inverse_sqrt(step, base_lr, max(warmup, 1), width)
    if name == "cosine":
        return cosine(step, base_lr, max(warmup, 1), total_steps, min_lr)
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULES}")
