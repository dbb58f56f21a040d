"""BERT's WordPiece tokenizer, read from a vocab.txt (one token per line, the line number is its id).

Text becomes ids in four steps:

1. Special tokens typed in the text ("[MASK]", "[SEP]", ...) are cut out first and kept whole.
2. Normalise each remaining piece ("basic tokenisation", part 1):
     - drop NUL, U+FFFD and control characters (categories Cc Cf Cs Co, but not \t \n \r),
       and turn every whitespace character into a plain space;
     - put spaces around CJK ideographs, so that each becomes a word of its own
       (Chinese is written without spaces; Hangul, kana and other scripts are left alone);
     - strip accents: decompose (NFD: "é" -> "e" + U+0301) and drop the non-spacing marks (Mn);
     - lower-case, one character at a time.
3. Split into words (part 2): on whitespace, and every punctuation character becomes a word of its own.
4. WordPiece: cut each word into the longest vocabulary entries, greedily from the left; every piece
   after the first carries the prefix "##" ("unaffable" -> "una", "##ffa", "##ble"). A word that
   cannot be covered, or is longer than 100 characters, becomes one [UNK].

A sequence is then [CLS] tokens [SEP]; a batch is padded on the right with [PAD] (id 0 here) and
comes with an attention mask (1 = real token, 0 = padding).

This follows the reference ("BertNormalizer" + "BertPreTokenizer" + "WordPiece" of the `tokenizers`
package, as configured by the model's tokenizer.json) step for step, and the tests compare the two.
Two details matter for exact agreement: lower-casing is per character (Python's str.lower() would turn
a final capital sigma into "ς", the reference gives "σ"), and "whitespace" is Unicode's White_Space
property, not str.isspace() (which also counts U+001C..U+001F, controls the reference deletes).
"""
import os
import unicodedata
import warnings
from dataclasses import dataclass

import numpy as np

# Unicode's White_Space property (what the reference's is_whitespace uses), as code points.
WHITESPACE = frozenset([0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                        0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
# The CJK Unified Ideographs blocks and their extensions and compatibility blocks.
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_CHARS_PER_WORD = 100
CONTINUATION = "##"


def is_whitespace(ch):
    return ord(ch) in WHITESPACE


def is_control(ch):
    """Categories Cc (controls), Cf (format), Cs (surrogates), Co (private use); tab, newline and carriage
    return count as whitespace instead. Unassigned code points (Cn) are kept, as the reference keeps them."""
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co")


def is_punctuation(ch):
    """ASCII punctuation ("$", "+", "^", "`" are not Unicode punctuation but split here too) or categories P*."""
    code = ord(ch)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def is_cjk(ch):
    code = ord(ch)
    return any(low <= code <= high for low, high in CJK_RANGES)


def normalize(text, lowercase=True, strip_accents=True):
    """Step 2: clean, space out CJK, strip accents, lower-case. str -> str."""
    kept = [ch for ch in text if not (ch == "\x00" or ch == "\ufffd" or is_control(ch))]
    spaced = [" " if is_whitespace(ch) else ch for ch in kept]
    cjk_split = "".join(f" {ch} " if is_cjk(ch) else ch for ch in spaced)
    if strip_accents:
        decomposed = unicodedata.normalize("NFD", cjk_split)
        cjk_split = "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    if lowercase:
        cjk_split = "".join(ch.lower() for ch in cjk_split)    # per character: see the module docstring
    return cjk_split


def split_words(text):
    """Step 3: whitespace separates words; each punctuation character is a word. str -> [str]."""
    words = []
    current = []
    for ch in text:
        if is_whitespace(ch) or is_punctuation(ch):
            if current:
                words.append("".join(current))
                current = []
            if is_punctuation(ch):
                words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def wordpiece(word, vocab, unk_token="[UNK]", max_chars=MAX_CHARS_PER_WORD):
    """Step 4: greedy longest-match-first. "playing" -> ["playing"], "unaffable" -> ["una", "##ffa", "##ble"].

    From position start, try the whole rest of the word, then one character shorter, and so on,
    until a vocabulary entry matches ("##"-prefixed unless start == 0); take it and continue after it.
    If nothing matches at some start, the whole word is [UNK] (not just that part).
    """
    if len(word) > max_chars:
        return [unk_token]
    pieces = []
    start = 0
    while start < len(word):
        end = len(word)
        match = None
        while end > start:
            candidate = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if candidate in vocab:
                match = candidate
                break
            end -= 1
        if match is None:
            return [unk_token]
        pieces.append(match)
        start = end
    return pieces


@dataclass
class BatchEncoding:
    """A padded batch. ids, attention_mask, token_type_ids: (B, T) int64; tokens: B lists of strings.

    attention_mask is 1 on real tokens ([CLS] and [SEP] included) and 0 on padding;
    padding_mask (True = padding) is what the project's models take.
    """
    ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray
    tokens: list

    @property
    def padding_mask(self):
        return self.attention_mask == 0                                 # (B, T) bool


class WordPieceTokenizer:
    """vocab.txt -> a BERT tokenizer: tokenize(text) -> [str], encode(text) -> [int], __call__(texts) -> BatchEncoding.

    max_length: the longest sequence, [CLS] and [SEP] included (512 = the model's position table).
    Longer texts are cut to max_length - 2 word pieces with a warning (truncation=True, the default),
    or raise ValueError (truncation=False). An empty or all-whitespace string encodes to [CLS] [SEP].
    """

    def __init__(self, vocab, lowercase=True, strip_accents=True, max_length=512, unk_token="[UNK]",
                 cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]", special_tokens=SPECIAL_TOKENS):
        if isinstance(vocab, (str, os.PathLike)):
            vocab = load_vocab(vocab)
        self.vocab = dict(vocab)                                     # {token: id}
        self.inverse_vocab = {i: token for token, i in self.vocab.items()}
        for token in (unk_token, cls_token, sep_token, pad_token):
            if token not in self.vocab:
                raise ValueError(f"special token {token!r} is not in the vocabulary")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {max_length}")
        self.lowercase = lowercase
        self.strip_accents = strip_accents
        self.max_length = max_length
        self.unk_token, self.cls_token, self.sep_token, self.pad_token = unk_token, cls_token, sep_token, pad_token
        self.special_tokens = tuple(t for t in special_tokens if t in self.vocab)

    @property
    def pad_id(self):
        return self.vocab[self.pad_token]

    def __len__(self):
        return len(self.vocab)

    def split_special(self, text):
        """Step 1: [(piece, is_special)], special tokens cut out of the raw text (longest first where they start)."""
        parts = []
        plain_start = 0
        position = 0
        while position < len(text):
            found = None
            if text[position] == "[":
                found = max((t for t in self.special_tokens if text.startswith(t, position)), key=len, default=None)
            if found is None:
                position += 1
                continue
            if position > plain_start:
                parts.append((text[plain_start:position], False))
            parts.append((found, True))
            position += len(found)
            plain_start = position
        if plain_start < len(text):
            parts.append((text[plain_start:], False))
        return parts

    def tokenize(self, text):
        """str -> word pieces, without [CLS]/[SEP]."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        pieces = []
        for part, is_special in self.split_special(text):
            if is_special:
                pieces.append(part)
                continue
            normalized = normalize(part, self.lowercase, self.strip_accents)
            for word in split_words(normalized):
                pieces.extend(wordpiece(word, self.vocab, self.unk_token))
        return pieces

    def encode(self, text, truncation=True, max_length=None):
        """str -> [CLS] ids [SEP] as a list of ints, at most max_length long (see the class docstring)."""
        tokens = self.tokens_with_specials(text, truncation, max_length)
        return [self.vocab[t] for t in tokens]

    def tokens_with_specials(self, text, truncation=True, max_length=None):
        max_length = self.max_length if max_length is None else max_length
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 (room for [CLS] and [SEP]), got {max_length}")
        pieces = self.tokenize(text)
        room = max_length - 2
        if len(pieces) > room:
            if not truncation:
                raise ValueError(f"text of {len(pieces)} word pieces + [CLS] and [SEP] is longer than "
                                 f"max_length {max_length}: {text[:40]!r}...")
            warnings.warn(f"text of {len(pieces)} word pieces truncated to {room} (+ [CLS] and [SEP] "
                          f"= max_length {max_length}): {text[:40]!r}...", stacklevel=3)
            pieces = pieces[:room]
        return [self.cls_token, *pieces, self.sep_token]

    def decode(self, ids, skip_special=True):
        """ids -> text: pieces joined by spaces, "##" pieces glued to the one before (lower-cased, accents gone)."""
        words = []
        for i in ids:
            token = self.inverse_vocab.get(int(i))
            if token is None:
                raise ValueError(f"token id {i} outside vocabulary of {len(self.vocab)}")
            if skip_special and token in self.special_tokens and token != self.unk_token:
                continue
            if token.startswith(CONTINUATION) and words:
                words[-1] += token[len(CONTINUATION):]
            else:
                words.append(token)
        return " ".join(words)

    def __call__(self, texts, truncation=True, max_length=None):
        """A batch: [str] (or one str) -> BatchEncoding, padded on the right to the longest sequence."""
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        if not texts:
            raise ValueError("no texts given: an empty batch cannot be encoded")
        tokens = [self.tokens_with_specials(text, truncation, max_length) for text in texts]
        B = len(tokens)
        T = max(len(seq) for seq in tokens)
        ids = np.full((B, T), self.pad_id, dtype=np.int64)                      # (B, T)
        attention_mask = np.zeros((B, T), dtype=np.int64)                       # (B, T)
        for b, seq in enumerate(tokens):
            ids[b, :len(seq)] = [self.vocab[t] for t in seq]
            attention_mask[b, :len(seq)] = 1
        token_type_ids = np.zeros((B, T), dtype=np.int64)                       # (B, T): one segment
        return BatchEncoding(ids, attention_mask, token_type_ids, tokens)


def load_vocab(path):
    """vocab.txt -> {token: id}, the id being the 0-based line number."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no vocabulary file at {path}")
    vocab = {}
    with open(path, encoding="utf-8") as f:
        for line_number, line in enumerate(f):
            token = line.rstrip("\n")
            if token in vocab:
                raise ValueError(f"{path}: token {token!r} appears twice (lines {vocab[token] + 1} and {line_number + 1})")
            vocab[token] = line_number
    if not vocab:
        raise ValueError(f"{path} is empty: no vocabulary")
    return vocab
