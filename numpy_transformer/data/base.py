"""What every tokenizer here shares: special tokens, id checks, and saving to JSON.

A tokenizer maps text to a list of integer ids and back. Each one has a *base vocabulary*
(characters, words, or bytes plus merges) with ids ``0 .. n_base - 1``, and optional
*special tokens* (``<pad>``, ``<bos>``, ``<eos>``, ``<mask>``, ``<cls>``, ``<sep>``, ...) whose
ids come right after it: ``n_base, n_base + 1, ...``. So

    vocab_size = n_base + len(special_tokens)

Special tokens never come out of ``encode(text)``: the text ``"<eos>"`` is encoded as ordinary
characters. A caller adds them by id, e.g. ``[tok.token_to_id("<bos>")] + tok.encode(text)``.
``decode`` writes a special token as its name (or drops it with ``skip_special=True``).
"""
from __future__ import annotations

import json
import os

from ..atomic import atomic_open

JSON_FORMAT_VERSION = 1


def check_special_tokens(special_tokens) -> list[str]:
    """Return special_tokens as a list of distinct, non-empty strings, or raise ValueError."""
    if special_tokens is None:
        return []
    if isinstance(special_tokens, str):
        raise ValueError(
            f"special_tokens must be a list of names, not the string {special_tokens!r}"
        )
    names = list(special_tokens)
    seen = set()
    for name in names:
        if not isinstance(name, str) or name == "":
            raise ValueError(f"special token {name!r} must be a non-empty string")
        if name in seen:
            raise ValueError(f"special token {name!r} is listed twice")
        seen.add(name)
    return names


class Tokenizer:
    """Base class: subclasses set ``n_base`` and implement encode, decode and _base_json.

    Subclass contract:
      * ``self.n_base``             number of ids in the base vocabulary
      * ``_base_token_to_id(tok)``  id of a base token, or None
      * ``_base_id_to_token(i)``    printable form of base id i
      * ``_base_json()``            dict with everything but "type" and "special_tokens"
    """

    type_name = "base"  # the "type" field in JSON; load_tokenizer dispatches on it

    def _set_special_tokens(self, special_tokens) -> None:
        self.special_tokens = check_special_tokens(special_tokens)
        # special ids follow the base vocabulary in the order given
        self._special_to_id = {
            name: self.n_base + i for i, name in enumerate(self.special_tokens)
        }

    @property
    def vocab_size(self) -> int:
        """Number of distinct ids: base vocabulary plus special tokens."""
        return self.n_base + len(self.special_tokens)

    @property
    def special_ids(self) -> dict[str, int]:
        """{special token name: id}."""
        return dict(self._special_to_id)

    def token_to_id(self, name: str) -> int:
        """Id of a special token (e.g. "<eos>") or of a base-vocabulary token; ValueError if absent."""
        if name in self._special_to_id:
            return self._special_to_id[name]
        base_id = self._base_token_to_id(name)
        if base_id is None:
            raise ValueError(
                f"token {name!r} is not in this {self.type_name} tokenizer's vocabulary "
                f"(special tokens: {self.special_tokens})"
            )
        return base_id

    def id_to_token(self, token_id: int) -> str:
        """Printable form of one id (special tokens by name)."""
        self.check_ids([token_id])
        if token_id >= self.n_base:
            return self.special_tokens[token_id - self.n_base]
        return self._base_id_to_token(token_id)

    def is_special(self, token_id: int) -> bool:
        return self.n_base <= token_id < self.vocab_size

    def check_ids(self, ids) -> list[int]:
        """Return ids as a list of Python ints, or raise ValueError naming the first bad one."""
        checked = []
        for position, token_id in enumerate(ids):
            # numpy integers are fine; bools and floats are not ids
            if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
                raise ValueError(f"token id {token_id!r} at position {position} is not an integer")
            value = int(token_id)
            if not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"token id {value} at position {position} outside vocabulary of {self.vocab_size}"
                )
            checked.append(value)
        return checked

    # ---- persistence -------------------------------------------------------------------


    def id_pieces(self, ids, base_piece, skip_special: bool = False) -> list:
        """One piece per id, for decode: base_piece(id) for the base vocabulary, a special token's
        name (or nothing, with skip_special) above it. The ids are checked first."""
        pieces = []
        for token_id in self.check_ids(ids):
            if token_id < self.n_base:
                pieces.append(base_piece(token_id))
            elif not skip_special:
                pieces.append(self.special_tokens[token_id - self.n_base])
        return pieces
    def to_json(self) -> dict:
        """Everything needed to rebuild this tokenizer, as a JSON-ready dict."""
        data = {"type": self.type_name, "format_version": JSON_FORMAT_VERSION}
        data.update(self._base_json())
        data["special_tokens"] = list(self.special_tokens)
        return data

    def save(self, path) -> None:
        """Write to_json() to path atomically: a temporary file in the same folder, then os.replace.

        A crash mid-write leaves either the old file or the new one, never half of one.
        """
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise ValueError(f"cannot save tokenizer to {path!r}: folder {folder!r} does not exist")
        text = json.dumps(self.to_json(), ensure_ascii=False, indent=1)
        with atomic_open(path, "w", encoding="utf-8") as f:
            f.write(text)

    def __eq__(self, other) -> bool:
        # two tokenizers are equal when they would save the same JSON
        return type(self) is type(other) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"

    # ---- subclass hooks ----------------------------------------------------------------

    def _base_token_to_id(self, token: str):
        raise NotImplementedError

    def _base_id_to_token(self, token_id: int) -> str:
        raise NotImplementedError

    def _base_json(self) -> dict:
        raise NotImplementedError


def read_json_file(path) -> dict:
    """Read a tokenizer JSON file; ValueError naming the file if missing or not JSON."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"tokenizer file {path!r} does not exist")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"tokenizer file {path!r} is not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"tokenizer file {path!r} holds a {type(data).__name__}, not a JSON object")
    return data


def check_json_type(data: dict, expected: str) -> None:
    """ValueError unless data is a dict whose "type" is expected and format_version is known."""
    if not isinstance(data, dict):
        raise ValueError(f"tokenizer JSON must be a dict, got {type(data).__name__}")
    found = data.get("type")
    if found != expected:
        raise ValueError(f"tokenizer JSON has type {found!r}, expected {expected!r}")
    version = data.get("format_version", JSON_FORMAT_VERSION)
    if version != JSON_FORMAT_VERSION:
        raise ValueError(
            f"tokenizer JSON format_version {version!r} is not supported (expected {JSON_FORMAT_VERSION})"
        )
