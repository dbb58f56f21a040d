"""Fine-tuning a pretrained Encoder on a toy labelled task, and the data both stages use.

The task: is a short generated film review positive or negative? Reviews come from a tiny grammar
whose sentiment is carried by interchangeable words (12 positive and 12 negative adjectives, 6 + 6
verbs). A review's sentences all share one sentiment, so an unlabelled corpus of such reviews
already says which words go together: masked-LM pretraining can learn that "superb" fills the same
slots as "wonderful" and never sits next to "hated". The labelled set is deliberately small, so
many test reviews use words that no labelled example had; a model trained from scratch has no way
to know them, a pretrained one does. That difference is the pretrain-then-fine-tune gain.

    reviews_corpus(n)          unlabelled text, one review per line (for pretraining)
    labelled_reviews(n, seed)  (texts, labels): 1 positive, 0 negative (single sentences)
    classification_arrays      [CLS] + token ids + [PAD]...  (N, T), labels (N,)
    init_from_pretrained       copy every shared parameter of a pretrained Encoder into a new one
"""
import numpy as np

from .checkpoint import load_params

POSITIVE_ADJ = ("good", "great", "wonderful", "superb", "brilliant", "lovely", "excellent", "charming",
                "delightful", "moving", "beautiful", "clever")
NEGATIVE_ADJ = ("bad", "awful", "terrible", "dull", "boring", "weak", "poor", "clumsy", "tedious",
                "messy", "painful", "silly")
POSITIVE_VERB = ("loved", "enjoyed", "adored", "liked", "admired", "praised")
NEGATIVE_VERB = ("hated", "disliked", "regretted", "loathed", "despised", "resented")
SUBJECTS = ("the film", "the acting", "the story", "the music", "the ending", "the cast", "the script",
            "the camera work")
REVIEWERS = ("i", "we", "my friend", "the critic", "everyone", "my sister")


def review_sentence(rng, positive):
    """One sentence of the given sentiment, e.g. 'the story was superb .' or 'we hated the ending .'"""
    adjectives = POSITIVE_ADJ if positive else NEGATIVE_ADJ
    verbs = POSITIVE_VERB if positive else NEGATIVE_VERB
    form = rng.integers(0, 3)
    if form == 0:
        return f"{rng.choice(SUBJECTS)} was {rng.choice(adjectives)} ."
    if form == 1:
        return f"{rng.choice(REVIEWERS)} {rng.choice(verbs)} {rng.choice(SUBJECTS)} ."
    return f"{rng.choice(SUBJECTS)} was {rng.choice(adjectives)} and {rng.choice(adjectives)} ."


def reviews_corpus(n_reviews=6000, seed=0):
    """Unlabelled reviews, one per line, each 2-4 sentences of one sentiment (the pretraining text)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_reviews):
        positive = bool(rng.integers(0, 2))
        n_sentences = int(rng.integers(2, 5))
        lines.append(" ".join(review_sentence(rng, positive) for _ in range(n_sentences)))
    return "\n".join(lines) + "\n"


def labelled_reviews(n_examples, seed):
    """(texts, labels): single review sentences and their sentiment (1 positive, 0 negative)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=n_examples)                              # (N,)
    texts = [review_sentence(rng, bool(label)) for label in labels]
    return texts, labels.astype(np.int64)


def classification_arrays(texts, tokenizer, max_len, cls_id, pad_id, truncate=False):
    """ids (N, max_len) = [CLS] + tokens + [PAD]...; a text that does not fit is cut (truncate=True)
    or is a ValueError."""
    ids = np.full((len(texts), max_len), pad_id, dtype=np.int64)              # (N, T)
    for row, text in enumerate(texts):
        tokens = [cls_id] + tokenizer.encode(text)
        if len(tokens) > max_len and not truncate:
            raise ValueError(f"example {row} has {len(tokens)} tokens with [CLS], more than max_len {max_len}")
        tokens = tokens[:max_len]
        ids[row, :len(tokens)] = tokens
    return ids


def init_from_pretrained(model, pretrained_params):
    """Load pretrained weights into `model` except the classification head's (pooler, classifier),
    which the new task trains from their fresh initialisation."""
    own = model.parameters()
    params = {name: value for name, value in pretrained_params.items()
              if not name.startswith(("pooler.", "classifier."))}
    for name in own:
        if name.startswith(("pooler.", "classifier.")):
            params[name] = own[name].copy()
    load_params(model, params)
