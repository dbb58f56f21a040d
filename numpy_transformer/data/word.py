"""Word-level tokenizer: words, punctuation marks and newlines, with an <unk> token.

Splitting (``WORD_PATTERN``) yields three kinds of token:
  * a word: letters/digits/underscore, with inner apostrophes kept ("don't", "o'er", "rebel's");
  * one punctuation mark: any other single non-space character (".", ",", "-", "'", "(");
  * a newline "\\n" (one token per newline, so line structure survives).
All other whitespace (spaces, tabs, "\\r") only separates tokens and is not kept.

Vocabulary (``WordTokenizer.train``): tokens counted over the text, those seen fewer than
``min_freq`` times dropped, the rest ordered by (count descending, token ascending) — so ties are
broken alphabetically and training is deterministic — and the first ``max_vocab`` kept.
Id 0 is ``<unk>``, ids 1..n are the kept tokens in that order, special tokens follow.

Decoding joins tokens with single spaces except that (``_glue``)
  * closing punctuation  . , ; : ! ? ) ] } %  sticks to the token before it,
  * opening brackets  ( [ {  stick to the token after them,
  * a hyphen "-" sticks to both neighbours ("well-known", "Macdonwald--Worthy"),
  * a newline has no space on either side.

Round trip, exactly: ``decode(encode(s)) == s`` if and only if every token of s is in the
vocabulary and s is already in normal form, ``s == tok.normalize(s)``; ``normalize`` splits and
re-joins by the rules above. So "Hello, world!\\nBye." survives (when its words are known), while
"Hello ,  world" comes back as "Hello, world", "a - b" as "a-b", and "x\\t y" as "x y".
With ``lowercase=True`` the text is lower-cased before splitting, so capitals never come back.
"""
from __future__ import annotations

import re
from collections import Counter

from .base import Tokenizer, check_json_type

WORD_PATTERN = r"\w+(?:'\w+)*|\n|[^\w\s]"
UNK = "<unk>"
CLOSE_PUNCT = frozenset(".,;:!?)]}%")
OPEN_PUNCT = frozenset("([{")
JOIN_BOTH = frozenset("-\n")


def _glue(tokens: list[str]) -> str:
    """Join tokens with spaces, attaching punctuation and newlines as the module doc says."""
    pieces = []
    previous = None
    for token in tokens:
        if previous is not None:
            no_space = (
                token in CLOSE_PUNCT
                or token in JOIN_BOTH
                or previous in OPEN_PUNCT
                or previous in JOIN_BOTH
            )
            if not no_space:
                pieces.append(" ")
        pieces.append(token)
        previous = token
    return "".join(pieces)


class WordTokenizer(Tokenizer):
    """Word tokenizer with a fixed vocabulary; build one with ``WordTokenizer.train(text, ...)``.

    Args:
        words: the base vocabulary after <unk>, in id order (id of words[k] is k + 1).
        special_tokens: names with ids after the words.
        lowercase: lower-case text before splitting (encode and train alike).
    """

    type_name = "word"

    def __init__(self, words, special_tokens=None, lowercase: bool = False):
        words = list(words)
        if UNK in words:
            raise ValueError(f"{UNK!r} is added by the tokenizer; do not list it among the words")
        if len(set(words)) != len(words):
            duplicates = sorted(w for w, c in Counter(words).items() if c > 1)
            raise ValueError(f"words listed more than once: {duplicates[:10]}")
        self.lowercase = bool(lowercase)
        self.id_to_word = [UNK] + words
        self.word_to_id = {w: i for i, w in enumerate(self.id_to_word)}
        self.unk_id = 0
        self.n_base = len(self.id_to_word)
        self._set_special_tokens(special_tokens)
        clash = [name for name in self.special_tokens if name in self.word_to_id]
        if clash:
            raise ValueError(f"special tokens {clash} are also words of the vocabulary")
        self._pattern = re.compile(WORD_PATTERN)

    @classmethod
    def train(cls, text: str, max_vocab=None, min_freq: int = 1, special_tokens=None,
              lowercase: bool = False) -> "WordTokenizer":
        """Count tokens of text and keep the most frequent ones.

        max_vocab: how many words (tokens) to keep, not counting <unk> and special tokens;
            None keeps all. vocab_size = 1 + (words kept) + len(special_tokens).
        min_freq: drop tokens seen fewer times than this.
        Ties in count are broken by the token's string order, so the result is deterministic.
        """
        if not isinstance(text, str):
            raise ValueError(f"WordTokenizer.train needs a str, got {type(text).__name__}")
        if max_vocab is not None and (not isinstance(max_vocab, int) or max_vocab < 1):
            raise ValueError(f"max_vocab must be a positive int or None, got {max_vocab!r}")
        if not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"min_freq must be an int >= 1, got {min_freq!r}")
        if lowercase:
            text = text.lower()
        counts = Counter(re.findall(WORD_PATTERN, text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        kept = [token for token, count in ranked if count >= min_freq]
        if max_vocab is not None:
            kept = kept[:max_vocab]
        return cls(kept, special_tokens=special_tokens, lowercase=lowercase)

    def split(self, text: str) -> list[str]:
        """The token strings of text (before mapping to ids)."""
        if not isinstance(text, str):
            raise ValueError(f"expected a str, got {type(text).__name__}")
        if self.lowercase:
            text = text.lower()
        return self._pattern.findall(text)

    def normalize(self, text: str) -> str:
        """text split and re-joined: the only form that can survive encode -> decode unchanged."""
        return _glue(self.split(text))

    def encode(self, text: str) -> list[int]:
        """Ids of the tokens of text; tokens outside the vocabulary become <unk> (id 0)."""
        word_to_id = self.word_to_id
        return [word_to_id.get(token, self.unk_id) for token in self.split(text)]

    def decode(self, ids, skip_special: bool = False) -> str:
        """Tokens joined by the gluing rules; <unk> appears as "<unk>"."""
        return _glue(self.id_pieces(ids, self.id_to_word.__getitem__, skip_special))

    def unknown_tokens(self, text: str) -> list[str]:
        """The distinct tokens of text that would be encoded as <unk>, in order of appearance."""
        unknown = [token for token in self.split(text) if token not in self.word_to_id]
        return list(dict.fromkeys(unknown))

    # ---- Tokenizer hooks ---------------------------------------------------------------

    def _base_token_to_id(self, token: str):
        return self.word_to_id.get(token)

    def _base_id_to_token(self, token_id: int) -> str:
        return self.id_to_word[token_id]

    def _base_json(self) -> dict:
        return {"words": self.id_to_word[1:], "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, data: dict) -> "WordTokenizer":
        check_json_type(data, cls.type_name)
        return cls(data["words"], special_tokens=data.get("special_tokens"),
                   lowercase=data.get("lowercase", False))
