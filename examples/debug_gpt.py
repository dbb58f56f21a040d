"""A tiny GPT, one forward and one backward pass: a script to step through in a debugger.

Run it under pdb (python -m pdb examples/debug_gpt.py), VS Code or PyCharm (configurations in the repo).
"""
import numpy as np

from numpy_transformer.models import GPT, GPTConfig


def main():
    config = GPTConfig(vocab_size=16, max_len=8, width=8, num_heads=2, num_layers=2, dtype="float64")
    model = GPT(config)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, config.vocab_size, size=(2, 6))      # (B, T)
    targets = np.roll(ids, -1, axis=1)                         # (B, T) next tokens
    logits, loss = model.forward(ids, targets)                 # set a breakpoint here, step into forward
    model.backward()                                           # ... or here, and step into backward
    for name, grad in model.grads().items():
        print(f"{name:42s} {str(grad.shape):9s} max |grad| = {np.abs(grad).max():.3e}")
    print(f"loss {float(loss):.4f}  (ln V = {np.log(config.vocab_size):.4f})")


if __name__ == "__main__":
    main()
