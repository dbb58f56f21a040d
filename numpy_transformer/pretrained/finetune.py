"""Fine-tuning the pretrained encoder: it is our Encoder, so backward() reaches every one of its weights.

The toy task: tell whether a short review is positive or negative, from its sentence embedding.

    e      = SentenceEncoder(text)               (B, C) unit vectors (mean pooling + L2 norm)
    logits = scale * (e W + b)                   (B, K)
    loss   = cross-entropy(logits, labels)

scale (20) sharpens the logits: e is a unit vector, so e W alone would be small at the start and
learning slow (the same trick as the cosine-similarity losses sentence-transformers trains with).
Training is plain SGD on every parameter, the word-embedding table included unless frozen.
"""
import numpy as np

from ..layers.base import Layer
from ..layers.linear import Linear
from ..layers.loss import CrossEntropyLoss
from ..models.common import output_gradient

# Sentences written for this example: short reviews, label 1 = positive, 0 = negative.
TOY_REVIEWS = [
    ("The soup was hot and full of flavour.", 1),
    ("Our waiter forgot us for an hour.", 0),
    ("I would happily stay at this hotel again.", 1),
    ("The room smelled of smoke and the sheets were stained.", 0),
    ("A charming little shop with friendly staff.", 1),
    ("The battery died after two days.", 0),
    ("This phone is fast and the screen is gorgeous.", 1),
    ("Customer service never answered my emails.", 0),
    ("The concert was the best night of my year.", 1),
    ("The film dragged on and the ending made no sense.", 0),
    ("Delivery was quick and the package arrived intact.", 1),
    ("The chair broke the first time I sat on it.", 0),
    ("Our guide was funny and knew every street.", 1),
    ("The train was late, crowded and dirty.", 0),
    ("The bread here is crisp outside and soft inside.", 1),
    ("I regret buying these shoes; they hurt.", 0),
]


class EmbeddingClassifier(Layer):
    """A linear classifier on top of a SentenceEncoder, trained end to end.

    forward(ids, attention_mask, targets=None) -> (logits (B, K), loss or None); backward() from the loss.
    """

    def __init__(self, sentence_encoder, num_classes=2, scale=20.0, seed=0):
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        width = sentence_encoder.encoder.config.width
        dtype = np.dtype(sentence_encoder.encoder.config.dtype)
        self.sentence_encoder = sentence_encoder
        self.classifier = Linear(width, num_classes, np.random.default_rng(seed), dtype=dtype)
        self.scale = scale
        self.loss_fn = CrossEntropyLoss()

    def children(self):
        return [("sentence_encoder", self.sentence_encoder), ("classifier", self.classifier)]

    def forward(self, ids, attention_mask, targets=None):
        embeddings = self.sentence_encoder.forward(ids, attention_mask)          # (B, C)
        raw = self.classifier.forward(embeddings)                                # (B, K)
        logits = raw * self.scale                                                # (B, K)
        loss = None if targets is None else self.loss_fn.forward(logits, np.asarray(targets))
        self.cache = (targets is not None,)
        return logits, loss

    def backward(self, dlogits=None):
        (has_loss,) = self.pop_cache()
        dlogits = output_gradient(self.loss_fn, has_loss, dlogits)            # (B, ...) from the loss
        draw = dlogits * self.scale                                              # (B, K)
        dembeddings = self.classifier.backward(draw)                             # (B, C)
        self.sentence_encoder.backward(dembeddings)


def finetune_classifier(sentence_encoder, texts=None, labels=None, steps=5, lr=0.05, freeze_embeddings=True,
                        seed=0):
    """Fine-tune sentence_encoder (in place) with a fresh linear classifier; full-batch SGD.

    texts, labels: the training set (default: TOY_REVIEWS). freeze_embeddings: leave the token,
    position and type tables as they are (the (30522, 384) word table dominates the parameter count
    and mostly gets zero gradient on a small set). Returns (classifier model, [loss before each step]).
    """
    if texts is None:
        texts, labels = zip(*TOY_REVIEWS)
    texts, labels = list(texts), np.asarray(labels)
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if steps <= 0 or lr <= 0:
        raise ValueError(f"steps and lr must be positive, got steps={steps}, lr={lr}")
    model = EmbeddingClassifier(sentence_encoder, num_classes=int(labels.max()) + 1, seed=seed)
    batch = sentence_encoder.tokenizer(texts)
    losses = []
    for _ in range(steps):
        model.zero_grad()
        _, loss = model.forward(batch.ids, batch.attention_mask, labels)
        model.backward()
        losses.append(float(loss))
        grads = model.grads()
        for name, param in model.parameters().items():
            if freeze_embeddings and ".embed." in f".{name}":
                continue
            param -= lr * grads[name]                       # SGD, in place: the layers own the arrays
    return model, losses


def classifier_accuracy(model, texts, labels):
    """Fraction of texts whose argmax logit is the label (no backward)."""
    batch = model.sentence_encoder.tokenizer(list(texts))
    logits, _ = model.forward(batch.ids, batch.attention_mask)
    model.clear_caches()
    return float(np.mean(logits.argmax(axis=-1) == np.asarray(labels)))
