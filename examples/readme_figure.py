"""Make the attention-map picture shown in the README: a tiny encoder-decoder learns to reverse digit
strings (about 10 s on 2 cores), and its cross-attention is drawn beside the known right pattern.

    python examples/readme_figure.py docs/images/reverse_attention.png
"""
import sys

import numpy as np

from numpy_transformer import viz
from numpy_transformer.data import make_task
from numpy_transformer.models import Transformer, TransformerConfig
from numpy_transformer.objectives import Seq2Seq
from numpy_transformer.train import TrainConfig, train


def main(out_path):
    task = make_task("reverse", 3000, 6, seed=0)
    tok = task.tokenizer
    src, tgt = task.seq2seq_arrays()                                  # (N, 6), (N, 8)
    bos, eos, pad = (tok.token_to_id(t) for t in ("<bos>", "<eos>", "<pad>"))
    objective = Seq2Seq(src[300:], tgt[300:], src[:300], tgt[:300], bos, eos, pad, max_eval=300)
    model = Transformer(TransformerConfig(src_vocab_size=tok.vocab_size, trg_vocab_size=tok.vocab_size, max_len=16,
                                          width=32, num_heads=2, num_layers=1, pad_id=pad))
    config = TrainConfig(steps=300, batch_size=32, lr=3e-3, warmup=20, eval_interval=300, checkpoint_interval=300,
                         progress=False)
    result = train(model, objective, config, log=None)
    model.forward(src[:1], tgt[:1, :-1])
    model.clear_caches()
    source = tok.decode(src[0].tolist())
    queries = ["<bos>"] + list(source[::-1])
    fig = viz.new_figure(9, 3.2)
    axes = fig.subplots(1, 3)
    known = np.vstack([task.attention(source), np.zeros((1, len(source)))])
    viz.plot_cross_attention(known, queries, list(source), ax=axes[0], title="the right pattern (reverse)")
    for head in range(2):
        viz.plot_cross_attention(model.attention_maps()["decoder_cross"][0][0][head], queries, list(source),
                                 ax=axes[head + 1], title=f"learned cross-attention, head {head}")
    fig.suptitle(f"encoder-decoder trained 300 steps to reverse digits: held-out exact match "
                 f"{result.history[-1]['val_exact_match']:.0%}", fontsize=10)
    fig.tight_layout()
    viz.save_figure(fig, out_path)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "reverse_attention.png")
