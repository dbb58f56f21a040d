"""All tokenizers in one place, and ``load_tokenizer`` which rebuilds any of them from JSON.

    CharTokenizer      one id per character                      (char.py)
    WordTokenizer      words + punctuation, <unk>, capped vocab  (word.py)
    ByteBPETokenizer   byte-level BPE trained from scratch       (bpe.py)

Each has encode(text) -> list[int], decode(ids) -> str, vocab_size, token_to_id(name),
to_json() -> dict, save(path) (atomic), and a classmethod from_json(dict).
"""
from __future__ import annotations

import os

from .base import Tokenizer, read_json_file
from .bpe import ByteBPETokenizer
from .char import CharTokenizer
from .word import WordTokenizer

TOKENIZER_TYPES = {
    CharTokenizer.type_name: CharTokenizer,
    WordTokenizer.type_name: WordTokenizer,
    ByteBPETokenizer.type_name: ByteBPETokenizer,
}


def load_tokenizer(path_or_dict) -> Tokenizer:
    """Rebuild a tokenizer from a saved JSON file or from a to_json() dict.

    The dict's "type" field ("char", "word" or "byte_bpe") chooses the class.
    """
    if isinstance(path_or_dict, dict):
        data = path_or_dict
    elif isinstance(path_or_dict, (str, os.PathLike)):
        data = read_json_file(path_or_dict)
    else:
        raise ValueError(
            f"load_tokenizer needs a path or a dict, got {type(path_or_dict).__name__}"
        )
    type_name = data.get("type")
    if type_name not in TOKENIZER_TYPES:
        raise ValueError(
            f"unknown tokenizer type {type_name!r}; known types: {sorted(TOKENIZER_TYPES)}"
        )
    return TOKENIZER_TYPES[type_name].from_json(data)


__all__ = ["Tokenizer", "CharTokenizer", "WordTokenizer", "ByteBPETokenizer",
           "TOKENIZER_TYPES", "load_tokenizer"]
