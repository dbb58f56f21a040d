"""Character-level tokenizer: one id per distinct character of the training text.

    vocabulary  = sorted(set(text))          ids 0 .. n_chars - 1, in code-point order
    encode(s)   = [char_to_id[c] for c in s]
    decode(ids) = "".join(id_to_char[i] for i in ids)

Round trip: ``decode(encode(s)) == s`` for every string s whose characters are all in the
vocabulary (with the default policy any other string raises, so a round trip never silently
fails). "Character" means Python ``str`` element, i.e. a Unicode code point: an emoji built from
several code points (a flag, a family) is several tokens.
"""
from __future__ import annotations

from .base import Tokenizer, check_json_type

UNK_POLICIES = ("error", "skip")


class CharTokenizer(Tokenizer):
    """Character tokenizer built from text.

    Args:
        text: the training text (or any string holding the wanted characters); the vocabulary
            is its sorted unique characters.
        special_tokens: names such as ["<pad>", "<bos>", "<eos>"], ids after the characters.
        unk: what encode does with a character not in the vocabulary:
            "error" (default) raise ValueError naming the characters and their positions;
            "skip" drop it; or a single character of the vocabulary to put in its place.
    """

    type_name = "char"

    def __init__(self, text: str, special_tokens=None, unk: str = "error"):
        if not isinstance(text, str):
            raise ValueError(f"CharTokenizer needs a str, got {type(text).__name__}")
        if text == "":
            raise ValueError("CharTokenizer cannot be built from empty text ''")
        self.chars = sorted(set(text))                                   # the base vocabulary
        self.char_to_id = {c: i for i, c in enumerate(self.chars)}
        self.n_base = len(self.chars)
        self._set_special_tokens(special_tokens)
        if unk not in UNK_POLICIES and unk not in self.char_to_id:
            raise ValueError(
                f"unk policy {unk!r} must be 'error', 'skip' or a character of the vocabulary"
            )
        self.unk = unk

    def encode(self, text: str) -> list[int]:
        """Ids of the characters of text; unknown characters are handled by the unk policy."""
        if not isinstance(text, str):
            raise ValueError(f"encode needs a str, got {type(text).__name__}")
        char_to_id = self.char_to_id
        try:
            return [char_to_id[c] for c in text]      # fast path: every character known
        except KeyError:
            pass
        unknown = [(pos, c) for pos, c in enumerate(text) if c not in char_to_id]
        if self.unk == "error":
            shown = ", ".join(f"{c!r} at {pos}" for pos, c in unknown[:10])
            more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
            raise ValueError(f"characters not in the vocabulary: {shown}{more}")
        if self.unk == "skip":
            return [char_to_id[c] for c in text if c in char_to_id]
        unk_id = char_to_id[self.unk]
        return [char_to_id.get(c, unk_id) for c in text]

    def decode(self, ids, skip_special: bool = False) -> str:
        """The string of the ids; special tokens appear by name unless skip_special."""
        return "".join(self.id_pieces(ids, self.chars.__getitem__, skip_special))

    # ---- Tokenizer hooks ---------------------------------------------------------------

    def _base_token_to_id(self, token: str):
        return self.char_to_id.get(token)

    def _base_id_to_token(self, token_id: int) -> str:
        return self.chars[token_id]

    def _base_json(self) -> dict:
        return {"chars": "".join(self.chars), "unk": self.unk}

    @classmethod
    def from_json(cls, data: dict) -> "CharTokenizer":
        check_json_type(data, cls.type_name)
        return cls(data["chars"], special_tokens=data.get("special_tokens"), unk=data.get("unk", "error"))
