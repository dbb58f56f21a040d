"""Training objectives: where a batch comes from, and how a model turns it into a loss.

Every objective has the same three methods, so one training loop serves every model family:

    train_batch(batch_size, rng) -> dict of arrays          (random, drawn from rng)
    loss(model, batch, rng)      -> (loss: float, n_counted) runs model.forward; model.backward() follows;
                                                             n_counted = predictions averaged over (may be 0:
                                                             the loss is then 0, and so is its gradient)
    evaluate(model)              -> {"val_loss": ..., "val_ppl": ..., ...} on a FIXED validation set

When threads share a batch (parallel.py, the trainer's default on the Numba backend), loss() is called
once per thread at the same time, each with a replica of the model and a slice of the batch: it must
not keep state of its own between calls, nor reach for a model other than the one it is given.

    CausalLM        GPT:          predict token t+1 from tokens 0..t          loss = mean_t -log p(x_{t+1} | x_<=t)
    MaskedLM        Encoder:      predict the 15% hidden tokens from both sides (BERT's 80/10/10 recipe)
    MaskedSentences Encoder:      the same on separate [CLS] sentence [PAD] rows (the fine-tuning layout)
    Seq2Seq         Transformer:  predict target token i from the source and target tokens < i
    Classification  Encoder:      predict one label per sequence from the [CLS] position

The validation set is drawn once, with its own seed, when the objective is built: evaluation never
touches the training generator, so evaluating more or less often does not change the training run.
"""
import math

import numpy as np

from .data.batching import get_lm_batch

IGNORE_INDEX = -100


def perplexity(loss):
    """exp(mean cross-entropy in nats): the effective number of equally likely choices per token."""
    return math.exp(min(loss, 50.0))            # capped so a diverged loss gives a number, not OverflowError


def tokens_in(batch):
    """How many input tokens a batch feeds the model (for tokens/s): ids, or source plus target ids."""
    return sum(batch[key].size for key in ("ids", "src", "trg_in") if key in batch)


def mean_loss(model, objective, batches):
    """Token-weighted mean loss over a list of batches, in eval mode (no dropout, no backward)."""
    total, count = 0.0, 0
    for batch in batches:
        loss, n_tokens = objective.loss(model, batch, rng=None)
        total += loss * n_tokens
        count += n_tokens
    model.cache = None                          # evaluation is never followed by backward
    return total / max(count, 1)


class CausalLM:
    """Next-token prediction on one long id array (GPT). batch: ids (B, T), targets (B, T) = ids shifted."""

    def __init__(self, train_ids, val_ids, block_size, eval_batches=8, eval_batch_size=32, eval_seed=1234):
        train_ids = np.asarray(train_ids)
        val_ids = np.asarray(val_ids)
        for label, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) <= block_size:
                raise ValueError(f"block size {block_size} is larger than the {label} text "
                                 f"({len(ids)} tokens); use a smaller --block-size or a longer corpus")
        self.train_ids, self.val_ids, self.block_size = train_ids, val_ids, block_size
        eval_rng = np.random.default_rng(eval_seed)
        self.val_set = [self.make_batch(*get_lm_batch(val_ids, block_size, eval_batch_size, eval_rng))
                        for _ in range(eval_batches)]

    @staticmethod
    def make_batch(x, y):
        return {"ids": x, "targets": y}

    def train_batch(self, batch_size, rng):
        x, y = get_lm_batch(self.train_ids, self.block_size, batch_size, rng)   # (B, T), (B, T)
        return self.make_batch(x, y)

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["ids"], batch["targets"], rng=rng)
        return float(loss), batch["targets"].size

    def evaluate(self, model):
        val_loss = mean_loss(model, self, self.val_set)
        return {"val_loss": val_loss, "val_ppl": perplexity(val_loss)}


def mask_tokens(ids, rng, mask_id, n_random, mask_prob=0.15, can_mask=None, ignore_index=IGNORE_INDEX):
    """BERT's masking: choose each token with probability mask_prob; of the chosen ones
    80% become mask_id, 10% a random id in [0, n_random), 10% stay unchanged.

    The model must predict every chosen token (targets = the original id there, ignore_index
    elsewhere). The 10% random and 10% unchanged keep it from learning that only [MASK] positions
    matter, since at fine-tuning time there is no [MASK] at all.
    ids: (B, T) ints; can_mask: (B, T) bool or None (False: never chosen, e.g. [CLS] or padding).
    Returns inputs (B, T), targets (B, T).
    """
    ids = np.asarray(ids)
    chosen = rng.random(ids.shape) < mask_prob                      # (B, T) bool
    if can_mask is not None:
        chosen &= can_mask
    roll = rng.random(ids.shape)                                    # (B, T) in [0, 1)
    to_mask = chosen & (roll < 0.8)                                 # (B, T) 80% of chosen
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)               # (B, T) 10% of chosen
    random_ids = rng.integers(0, n_random, size=ids.shape)          # (B, T)
    inputs = np.where(to_mask, mask_id, ids)                        # (B, T)
    inputs = np.where(to_random, random_ids, inputs)                # (B, T); the other 10% unchanged
    targets = np.where(chosen, ids, ignore_index)                   # (B, T)
    return inputs.astype(ids.dtype), targets.astype(ids.dtype)


class MaskedLM:
    """Masked-LM pretraining for the Encoder on windows of one long id array.

    mask_id: the id of "<mask>"; n_random: random replacements come from ids [0, n_random)
    (the ordinary tokens, never the special ones). The validation masks are drawn once.
    """

    def __init__(self, train_ids, val_ids, block_size, mask_id, n_random, mask_prob=0.15,
                 eval_batches=8, eval_batch_size=32, eval_seed=1234):
        train_ids, val_ids = np.asarray(train_ids), np.asarray(val_ids)
        for label, ids in (("training", train_ids), ("validation", val_ids)):
            if len(ids) <= block_size:
                raise ValueError(f"block size {block_size} is larger than the {label} text ({len(ids)} tokens)")
        self.train_ids, self.val_ids, self.block_size = train_ids, val_ids, block_size
        self.mask_id, self.n_random, self.mask_prob = mask_id, n_random, mask_prob
        eval_rng = np.random.default_rng(eval_seed)
        self.val_set = [self.windows_to_batch(get_lm_batch(val_ids, block_size, eval_batch_size, eval_rng)[0],
                                              eval_rng) for _ in range(eval_batches)]

    def windows_to_batch(self, windows, rng):
        inputs, targets = mask_tokens(windows, rng, self.mask_id, self.n_random, self.mask_prob)
        return {"ids": inputs, "targets": targets}

    def train_batch(self, batch_size, rng):
        windows, _ = get_lm_batch(self.train_ids, self.block_size, batch_size, rng)   # (B, T)
        return self.windows_to_batch(windows, rng)

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["ids"], batch["targets"], head="mlm", rng=rng)
        return float(loss), int((batch["targets"] != IGNORE_INDEX).sum())

    def evaluate(self, model):
        val_loss = mean_loss(model, self, self.val_set)
        return {"val_loss": val_loss, "val_ppl": perplexity(val_loss)}


class MaskedSentences:
    """Masked-LM pretraining for the Encoder on separate sequences laid out as fine-tuning will see
    them: rows of [CLS] tokens [PAD]... (N, T). [CLS] and padding are never chosen for masking, and
    padded keys are masked out of attention."""

    def __init__(self, train_rows, val_rows, mask_id, n_random, pad_id, cls_id, mask_prob=0.15, eval_seed=1234):
        self.train_rows, self.val_rows = np.asarray(train_rows), np.asarray(val_rows)
        if len(self.train_rows) == 0 or len(self.val_rows) == 0:
            raise ValueError(f"masked LM needs training and validation sequences, got {len(self.train_rows)} "
                             f"and {len(self.val_rows)}")
        self.mask_id, self.n_random, self.pad_id, self.cls_id = mask_id, n_random, pad_id, cls_id
        self.mask_prob = mask_prob
        eval_rng = np.random.default_rng(eval_seed)
        self.val_set = [self.rows_to_batch(self.val_rows[i:i + 256], eval_rng)
                        for i in range(0, len(self.val_rows), 256)]

    def rows_to_batch(self, rows, rng):
        can_mask = (rows != self.pad_id) & (rows != self.cls_id)                 # (B, T)
        inputs, targets = mask_tokens(rows, rng, self.mask_id, self.n_random, self.mask_prob, can_mask)
        return {"ids": inputs, "targets": targets, "padding": rows == self.pad_id}

    def train_batch(self, batch_size, rng):
        picked = rng.integers(0, len(self.train_rows), size=batch_size)          # (B,)
        return self.rows_to_batch(self.train_rows[picked], rng)

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["ids"], batch["targets"], padding_mask=batch["padding"], head="mlm", rng=rng)
        return float(loss), int((batch["targets"] != IGNORE_INDEX).sum())

    def evaluate(self, model):
        val_loss = mean_loss(model, self, self.val_set)
        return {"val_loss": val_loss, "val_ppl": perplexity(val_loss)}


class Seq2Seq:
    """Source -> target pairs for the encoder-decoder (e.g. the reverse and sort tasks).

    src: (N, S) ids; tgt: (N, L) = <bos> target <eos> (padded with pad_id if lengths differ).
    Decoder input is tgt[:, :-1], labels tgt[:, 1:]; the model's loss ignores pad_id.
    evaluate() also decodes the validation sources greedily (with the KV cache) and reports the
    exact-match accuracy: the share of sequences whose every token is right.
    """

    def __init__(self, train_src, train_tgt, val_src, val_tgt, bos_id, eos_id, pad_id, max_eval=2000):
        self.train_src, self.train_tgt = np.asarray(train_src), np.asarray(train_tgt)
        self.val_src, self.val_tgt = np.asarray(val_src)[:max_eval], np.asarray(val_tgt)[:max_eval]
        if len(self.train_src) == 0 or len(self.val_src) == 0:
            raise ValueError(f"seq2seq needs training and validation pairs, got {len(self.train_src)} "
                             f"and {len(self.val_src)}")
        self.bos_id, self.eos_id, self.pad_id = bos_id, eos_id, pad_id

    @staticmethod
    def make_batch(src, tgt):
        return {"src": src, "trg_in": tgt[:, :-1], "targets": tgt[:, 1:]}

    def train_batch(self, batch_size, rng):
        rows = rng.integers(0, len(self.train_src), size=batch_size)   # (B,)
        return self.make_batch(self.train_src[rows], self.train_tgt[rows])

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["src"], batch["trg_in"], batch["targets"], rng=rng)
        return float(loss), int((batch["targets"] != self.pad_id).sum())

    def evaluate(self, model, batch_size=250):
        from .generate import generate_seq2seq      # generation needs the model; imported where used
        batches = [self.make_batch(self.val_src[i:i + batch_size], self.val_tgt[i:i + batch_size])
                   for i in range(0, len(self.val_src), batch_size)]
        val_loss = mean_loss(model, self, batches)
        answer_len = self.val_tgt.shape[1] - 1                         # target tokens and <eos>
        correct = 0
        for batch in batches:
            out = generate_seq2seq(model, batch["src"], self.bos_id, self.eos_id, answer_len)  # (B, <= L-1)
            expected = batch["targets"]                                # (B, L-1)
            padded = np.full(expected.shape, self.pad_id, dtype=expected.dtype)
            padded[:, :out.shape[1]] = out[:, :expected.shape[1]]
            correct += int(np.all(padded == expected, axis=1).sum())
        return {"val_loss": val_loss, "val_ppl": perplexity(val_loss),
                "val_exact_match": correct / len(self.val_src)}


class Classification:
    """One label per sequence, read from the [CLS] position by the Encoder's classification head.

    ids: (N, T) with [CLS] first and pad_id after the end; labels: (N,).
    evaluate() reports the validation loss and accuracy.
    """

    def __init__(self, train_ids, train_labels, val_ids, val_labels, pad_id):
        self.train_ids, self.train_labels = np.asarray(train_ids), np.asarray(train_labels)
        self.val_ids, self.val_labels = np.asarray(val_ids), np.asarray(val_labels)
        self.pad_id = pad_id

    def make_batch(self, ids, labels):
        return {"ids": ids, "labels": labels, "padding": ids == self.pad_id}

    def train_batch(self, batch_size, rng):
        rows = rng.integers(0, len(self.train_ids), size=batch_size)   # (B,)
        return self.make_batch(self.train_ids[rows], self.train_labels[rows])

    def loss(self, model, batch, rng=None):
        _, loss = model.forward(batch["ids"], batch["labels"], padding_mask=batch["padding"],
                                head="classify", rng=rng)
        return float(loss), len(batch["labels"])

    def predict(self, model, ids, batch_size=256):
        """(N,) predicted labels for (N, T) ids, in eval mode."""
        predictions = []
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size]                     # (B, T)
            logits, _ = model.forward(chunk, padding_mask=chunk == self.pad_id, head="classify")
            predictions.append(logits.argmax(axis=-1))                # (B,)
        model.cache = None
        return np.concatenate(predictions)

    def evaluate(self, model, batch_size=256):
        batches = [self.make_batch(self.val_ids[i:i + batch_size], self.val_labels[i:i + batch_size])
                   for i in range(0, len(self.val_ids), batch_size)]
        val_loss = mean_loss(model, self, batches)
        accuracy = float((self.predict(model, self.val_ids) == self.val_labels).mean())
        return {"val_loss": val_loss, "val_ppl": perplexity(val_loss), "val_accuracy": accuracy}
