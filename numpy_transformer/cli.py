"""The command line: python -m numpy_transformer {pretrain, generate, evaluate, finetune, attention}.

    python -m numpy_transformer pretrain                      # the main job: a char-level GPT on Shakespeare
    python -m numpy_transformer pretrain --preset shakespeare # the longer recipe (val loss <= 1.9)
    python -m numpy_transformer pretrain --model transformer --corpus reverse
    python -m numpy_transformer generate --run runs/gpt-shakespeare --prompt "ROMEO:"
    python -m numpy_transformer evaluate --run runs/gpt-shakespeare
    python -m numpy_transformer finetune --run runs/encoder-reviews
    python -m numpy_transformer attention --run runs/gpt-shakespeare --text "To be" --out attn.png

Settings come, later ones winning, from: the model family's defaults, --preset, --config FILE.json
(keys are the flag names: {"steps": 500, "lr": 0.001}), then the flags typed. Bad input of any kind
is one line on stderr and exit code 2, before any file is written.
"""
import argparse
import dataclasses
import json
import os
import sys
import time

import numpy as np

from .checkpoint import check_compatible, load_checkpoint
from .backend import get_backend
from .train import TrainConfig, TrainingDiverged, describe_threads, plot_history, threads_sharing, train
from .viz import save_figure

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130

# Per family: the model, data and trainer settings used when nothing else is given.
FAMILY_DEFAULTS = {
    "gpt": dict(corpus="shakespeare", tokenizer="char", block_size=64, width=128, layers=3, heads=4,
                ffn_hidden=0, dropout=0.0, steps=600, batch_size=32, lr=2e-3, warmup=50, min_lr=1e-4,
                weight_decay=0.1, eval_interval=100, checkpoint_interval=100),
    "encoder": dict(corpus="reviews", tokenizer="word", block_size=40, width=64, layers=2, heads=4,
                    ffn_hidden=0, dropout=0.0, steps=3000, batch_size=32, lr=1e-3, warmup=100,
                    min_lr=1e-4, weight_decay=0.01, eval_interval=500, checkpoint_interval=500),
    "transformer": dict(corpus="reverse", tokenizer="char", block_size=0, width=64, layers=2, heads=4,
                        ffn_hidden=0, dropout=0.0, steps=1000, batch_size=64, lr=1e-3, warmup=200,
                        min_lr=1e-5, weight_decay=0.0, eval_interval=250, checkpoint_interval=250),
}
PRESETS = {
    # char-level GPT on Shakespeare to validation loss <= 1.9 nats (see docs/training.md for timings)
    "shakespeare": dict(model="gpt", corpus="shakespeare", block_size=128, width=128, layers=4, heads=4,
                        steps=800, batch_size=24, lr=2e-3, warmup=100, min_lr=1e-4, eval_interval=100,
                        checkpoint_interval=200),
    "reverse": dict(model="transformer", corpus="reverse", steps=1000),
    "sort": dict(model="transformer", corpus="sort", steps=2500),
    "reviews": dict(model="encoder", corpus="reviews"),
}
TASK_CORPORA = ("copy", "reverse", "sort", "addition")
NAMED_CORPORA = ("shakespeare", "fallback", "reviews") + TASK_CORPORA


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad command line in ONE line (no usage dump) and exits with code 2.
    No prefix matching: --step or --temp is an error, not silently --steps or --temperature."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def whole_number(text, minimum):
    """int(text) if it is a whole number >= minimum, else argparse's one-line error naming the text."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {text}")
    return value


def positive_int(text):
    return whole_number(text, 1)


def non_negative_int(text):
    return whole_number(text, 0)


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


# --- the parser -------------------------------------------------------------------------------

def is_switch(field):
    """A TrainConfig field that is an on/off flag, given without a value (--decay-embeddings)."""
    return field.type is bool or field.type == "bool"


def add_trainer_flags(parser):
    """Every TrainConfig field as a flag, e.g. --batch-size, --grad-accum, --min-lr (from the dataclass)."""
    group = parser.add_argument_group("trainer (TrainConfig)")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.name == "progress":
            group.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                               help="no progress bar even on a terminal")
        elif is_switch(f):
            group.add_argument(flag, dest=f.name, action="store_true", default=argparse.SUPPRESS,
                               help=f"(default {f.default})")
        elif f.name == "data_parallel":
            group.add_argument(flag, dest=f.name, type=non_negative_int, default=argparse.SUPPRESS, metavar="N",
                               help="threads that split each batch, each running forward and backward on its "
                                    "share (default 0: one per core on the Numba backend, none on NumPy; a "
                                    "resumed run keeps its number); 1 keeps training on one thread, e.g. for a "
                                    "debugger")
        elif f.name in ("optimizer", "schedule"):
            choices = ("sgd", "adam", "adamw") if f.name == "optimizer" else ("constant", "inverse_sqrt", "cosine")
            group.add_argument(flag, dest=f.name, choices=choices, default=argparse.SUPPRESS,
                               help=f"(default {f.default})")
        else:
            group.add_argument(flag, dest=f.name, type=flag_type(f.name, f.type), default=argparse.SUPPRESS,
                               help=f"(TrainConfig default {f.default}; see the defaults by --model above)")


def flag_type(name, annotation):
    """The argparse type of a TrainConfig field: counts must be positive, seed/warmup any int, rates >= 0."""
    if annotation in (int, "int"):
        return int if name in ("seed", "warmup") else positive_int
    return non_negative_float


def add_model_flags(parser):
    group = parser.add_argument_group("model and data")
    group.add_argument("--model", choices=sorted(FAMILY_DEFAULTS), default=argparse.SUPPRESS,
                       help="model family (default gpt)")
    group.add_argument("--corpus", default=argparse.SUPPRESS,
                       help=f"one of {', '.join(NAMED_CORPORA)}, or the path of a UTF-8 text file "
                            "(default: shakespeare for gpt, reviews for encoder, reverse for transformer)")
    group.add_argument("--tokenizer", choices=("char", "word", "bpe"), default=argparse.SUPPRESS,
                       help="how text becomes ids (default char; word for the encoder)")
    group.add_argument("--vocab-size", dest="vocab_size", type=positive_int, default=argparse.SUPPRESS,
                       help="bpe: vocabulary to learn; word: words kept (default 512 / all)")
    group.add_argument("--val-fraction", dest="val_fraction", type=float, default=argparse.SUPPRESS,
                       help="the tail share of the corpus held out for validation (default 0.05)")
    group.add_argument("--task-length", dest="task_length", type=positive_int, default=argparse.SUPPRESS,
                       help="synthetic tasks: sequence length / digits (default 8 / 3 for addition)")
    group.add_argument("--task-examples", dest="task_examples", type=positive_int, default=argparse.SUPPRESS,
                       help="synthetic tasks: examples generated (default 20000; 10%% held out)")
    group.add_argument("--block-size", dest="block_size", type=positive_int, default=argparse.SUPPRESS,
                       help="context length T of the language models")
    group.add_argument("--width", type=positive_int, default=argparse.SUPPRESS, help="model width C")
    group.add_argument("--layers", type=positive_int, default=argparse.SUPPRESS, help="number of layers L")
    group.add_argument("--heads", type=positive_int, default=argparse.SUPPRESS, help="attention heads H")
    group.add_argument("--ffn-hidden", dest="ffn_hidden", type=int, default=argparse.SUPPRESS,
                       help="FFN inner width F (0: 4 C)")
    group.add_argument("--dropout", type=non_negative_float, default=argparse.SUPPRESS, help="dropout rate")


def family_defaults_text():
    """One line per family of the settings used when no flag says otherwise (shown by pretrain --help)."""
    keys = ("corpus", "steps", "batch_size", "lr", "block_size", "width", "layers", "heads")
    parts = []
    for family, defaults in FAMILY_DEFAULTS.items():
        parts.append(f"{family}: " + ", ".join(f"{key.replace('_', '-')} {defaults[key]}" for key in keys))
    return "Defaults by --model, " + "; ".join(parts) + "."


def build_parser():
    parser = OneLineParser(prog="python -m numpy_transformer",
                           description="Pretrain, sample from, evaluate, fine-tune and inspect NumPy Transformers.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True

    pretrain = commands.add_parser("pretrain", help="train a model from scratch (no arguments: char GPT on Shakespeare)",
                                   description="Pretrain a model. With no arguments: a small character-level GPT "
                                               "on Shakespeare in a few minutes on 2 cores. " + family_defaults_text())
    add_model_flags(pretrain)
    add_trainer_flags(pretrain)
    run = pretrain.add_argument_group("run")
    run.add_argument("--preset", choices=sorted(PRESETS), default=argparse.SUPPRESS,
                     help="a named recipe (flags still override it)")
    run.add_argument("--config", default=argparse.SUPPRESS, help="JSON file of settings, keys as the flag names")
    run.add_argument("--out", default=argparse.SUPPRESS, help="run directory (default runs/<model>-<corpus>)")
    run.add_argument("--resume", action="store_true", default=argparse.SUPPRESS,
                     help="continue from <out>/checkpoint.npz")
    run.add_argument("--overwrite", action="store_true", default=argparse.SUPPRESS,
                     help="replace the run in <out> (without it, a folder holding a checkpoint is refused, "
                          "and the default folder moves on to -2, -3, ...)")
    run.add_argument("--time-limit", dest="time_limit", type=non_negative_float, default=argparse.SUPPRESS,
                     help="stop (and save) after this many seconds (default 0: no limit)")
    run.add_argument("--sample-length", dest="sample_length", type=int, default=argparse.SUPPRESS,
                     help="characters/tokens of the sample printed at the end (default 400)")
    parser.pretrain = pretrain                          # read_config_file asks it which settings exist

    generate = commands.add_parser("generate", help="sample from a trained GPT or decode with a Transformer",
                                   description="Continue a prompt (GPT) or translate a source (Transformer).")
    add_checkpoint_flags(generate)
    generate.add_argument("--prompt", default="\n", help="GPT: text to continue; Transformer: the source")
    generate.add_argument("--max-new-tokens", dest="max_new_tokens", type=positive_int, default=300)
    generate.add_argument("--temperature", type=non_negative_float, default=0.8, help="0 is greedy")
    generate.add_argument("--top-k", dest="top_k", type=positive_int, default=None)
    generate.add_argument("--top-p", dest="top_p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--no-cache", dest="use_cache", action="store_false", help="recompute instead of KV cache")

    evaluate = commands.add_parser("evaluate", help="validation loss/perplexity (and accuracy) of a checkpoint",
                                   description="Evaluate a checkpoint on the validation split it was trained with.")
    add_checkpoint_flags(evaluate)

    finetune = commands.add_parser("finetune", help="fine-tune a pretrained encoder on the toy review-sentiment task",
                                   description="Fine-tune an Encoder + classification head on generated reviews, "
                                               "and compare with the same model trained from scratch.")
    add_checkpoint_flags(finetune)
    finetune.add_argument("--train-examples", dest="train_examples", type=positive_int, default=32,
                          help="labelled training examples (few, on purpose)")
    finetune.add_argument("--steps", type=positive_int, default=150)
    finetune.add_argument("--lr", type=non_negative_float, default=5e-4)
    finetune.add_argument("--seed", type=int, default=0)
    finetune.add_argument("--no-compare", dest="compare", action="store_false",
                          help="skip the from-scratch baseline")

    attention = commands.add_parser("attention", help="draw a checkpoint's attention maps for a text to PNG",
                                    description="Render every layer and head's attention weights for a text.")
    add_checkpoint_flags(attention)
    attention.add_argument("--text", required=True, help="GPT/encoder: the input text; Transformer: the source")
    attention.add_argument("--out", required=True, help="PNG file to write")
    attention.add_argument("--layer", type=int, default=None, help="only this layer (default all)")
    return parser


def add_checkpoint_flags(parser):
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--run", help="run directory holding checkpoint.npz")
    where.add_argument("--checkpoint", help="path of a checkpoint .npz")


# --- settings ---------------------------------------------------------------------------------

def read_config_file(path, parser):
    """Turn a JSON config file into flag tokens, so the parser checks its names and types like typed flags."""
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"config file {path!r} is not valid JSON: {err}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"config file {path!r} must hold a JSON object, not {type(settings).__name__}")
    switches = {f.name for f in dataclasses.fields(TrainConfig) if is_switch(f)} | {"resume", "overwrite", "no_progress"}
    tokens = []
    for key, value in settings.items():
        name = key.replace("-", "_")
        flag = "--" + name.replace("_", "-")
        if name in ("config", "command"):
            raise ValueError(f"config file {path!r}: key {key!r} is not allowed")
        if name in switches:                            # JSON true/false belongs to the switches, and only there
            if not isinstance(value, bool):
                raise ValueError(f"config file {path!r}: {key!r} takes true or false, not {json.dumps(value)}")
            if name == "progress":                      # "progress": false is --no-progress
                flag, value = "--no-progress", not value
            if value:
                tokens.append(flag)
        elif (isinstance(value, bool) or value is None) and parser.pretrain.get_default(name) is not None:
            # a setting pretrain knows (get_default gives None only for names it has no flag for)
            raise ValueError(f"config file {path!r}: {key!r} takes a value, not {json.dumps(value)}")
        else:                                           # an unknown key is reported by the caller, by name
            tokens.append(f"{flag}={value}")            # one token: a value may begin with "-"
    return tokens


def parse_file_tokens(parser, tokens, path):
    """parser.parse_known_args for a config file's tokens; a value of the wrong type ({"steps": 2.5}) is a
    ValueError naming the file, not argparse's usage message and exit (which names only the flag)."""
    parsers = (parser, parser.pretrain)
    saved = [each.exit_on_error for each in parsers]
    try:
        for each in parsers:
            each.exit_on_error = False                  # argparse then raises ArgumentError instead of exiting
        return parser.parse_known_args(["pretrain"] + tokens)
    except argparse.ArgumentError as err:
        raise ValueError(f"config file {path!r}: {err}") from None
    finally:
        for each, setting in zip(parsers, saved):
            each.exit_on_error = setting


def pretrain_settings(argv, parser):
    """Family defaults < preset < config file < typed flags, as one dict."""
    typed = vars(parser.parse_args(argv))
    from_file = {}
    if "config" in typed:
        file_tokens = read_config_file(typed["config"], parser)
        parsed, unknown = parse_file_tokens(parser, file_tokens, typed["config"])
        unknown_keys = [token[2:].split("=")[0].replace("-", "_") for token in unknown if token.startswith("--")]
        if unknown:
            raise ValueError(f"config file {typed['config']!r}: unknown setting(s) "
                             f"{', '.join(map(repr, unknown_keys or unknown))}; keys are the flag names "
                             f"of `pretrain --help`, e.g. \"width\" or \"block_size\"")
        from_file = vars(parsed)
    preset_name = typed.get("preset", from_file.get("preset"))
    preset = PRESETS[preset_name] if preset_name else {}
    family = typed.get("model", from_file.get("model", preset.get("model", "gpt")))
    settings = dict(FAMILY_DEFAULTS[family], model=family, vocab_size=0, val_fraction=0.05, task_length=0,
                    task_examples=20000, out=None, resume=False, overwrite=False, time_limit=0.0,
                    sample_length=400)
    for layer in (preset, from_file, typed):
        settings.update({k: v for k, v in layer.items() if k not in ("command", "config", "preset")})
    return settings


def train_config_from(settings):
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in settings.items() if k in names})


# --- commands ---------------------------------------------------------------------------------

def choose_run_dir(settings, corpus_name, log):
    """Where this run writes. A finished run is never replaced by accident: the default folder
    runs/<model>-<corpus> moves on to -2, -3, ... when it already holds a checkpoint, and an --out
    folder that holds one is refused unless --resume (continue it) or --overwrite (replace it)."""
    if settings["out"]:
        run_dir = settings["out"]
        taken = os.path.exists(os.path.join(run_dir, "checkpoint.npz"))
        if taken and not (settings["resume"] or settings["overwrite"]):
            raise ValueError(f"{run_dir!r} already holds a checkpoint: add --resume to continue it, "
                             f"--overwrite to replace it, or choose another --out")
        return run_dir
    base = os.path.join("runs", f"{settings['model']}-{corpus_name}")
    if settings["resume"] or settings["overwrite"]:
        return base
    run_dir, number = base, 1
    while os.path.exists(os.path.join(run_dir, "checkpoint.npz")):
        number += 1
        run_dir = f"{base}-{number}"
    if run_dir != base:
        log(f"note: {base} already holds a finished run, so this one goes to {run_dir} "
            f"(--resume continues the old one, --overwrite replaces it)")
    return run_dir


def run_pretrain(settings, log):
    from .tasks import build_task
    config = train_config_from(settings)
    task = build_task(settings, log)                       # data, tokenizer, model, objective: all checked
    run_dir = choose_run_dir(settings, task.corpus_name, log)
    ckpt_path = os.path.join(run_dir, "checkpoint.npz")
    if settings["resume"]:
        checkpoint = load_checkpoint(ckpt_path)            # clear ValueError if missing or damaged
        check_compatible(checkpoint, task.model)
        if checkpoint.tokenizer != task.tokenizer.to_json():
            raise ValueError(f"checkpoint {ckpt_path} was trained with a different tokenizer/corpus")
    used = checkpoint.extra.get("data_parallel_shards") if settings["resume"] else None
    accumulation = f" x {config.grad_accum} accumulated" if config.grad_accum > 1 else ""
    log(f"{settings['model']}: {task.model.num_parameters():,} parameters, corpus {task.corpus_name} "
        f"({task.describe}), {config.steps} steps of {config.batch_size} sequences{accumulation}, "
        f"{get_backend()} backend, {describe_threads(threads_sharing(config, used))}; run dir {run_dir}")
    deadline = time.perf_counter() + settings["time_limit"] if settings["time_limit"] > 0 else None
    timed_out = []

    def out_of_time(record, model):
        if deadline is not None and time.perf_counter() > deadline:
            timed_out.append(record["step"])
        return bool(timed_out)

    result = train(task.model, task.objective, config, run_dir=run_dir, resume=settings["resume"],
                   tokenizer=task.tokenizer, extra={"settings": settings}, callback=out_of_time, log=log)
    save_figure(plot_history(result.history), os.path.join(run_dir, "loss.png"))
    last_eval = [r for r in result.history if "val_loss" in r]
    summary = f" val loss {last_eval[-1]['val_loss']:.4f}" if last_eval else ""
    if result.interrupted:
        log(f"interrupted at step {result.step}: checkpoint saved to {ckpt_path}")
        return EXIT_INTERRUPTED
    if timed_out and result.step < config.steps:
        log(f"stopped by --time-limit at step {result.step} of {config.steps},{summary}; checkpoint {ckpt_path} "
            f"(--resume continues it)")
    else:
        log(f"done: {result.step} steps in {result.seconds:.0f} s,{summary}; checkpoint {ckpt_path}")
    if settings["sample_length"] > 0:
        log(task.sample(settings["sample_length"]))
    return 0


def checkpoint_path(args):
    return args.checkpoint if args.checkpoint else os.path.join(args.run, "checkpoint.npz")


def run_generate(args, log):
    from .tasks import task_from_checkpoint
    task = task_from_checkpoint(load_checkpoint(checkpoint_path(args)), log, need_data=False)
    rng = np.random.default_rng(args.seed)
    log(task.generate(args.prompt, args.max_new_tokens, rng, args.temperature, args.top_k, args.top_p,
                      args.use_cache))
    return 0


def run_evaluate(args, log):
    from .train import evaluate
    from .tasks import task_from_checkpoint
    task = task_from_checkpoint(load_checkpoint(checkpoint_path(args)), log)
    metrics = evaluate(task.model, task.objective)
    log("  ".join(f"{key} {value:.4f}" for key, value in metrics.items()))
    return 0


def run_finetune(args, log):
    from .tasks import finetune_reviews
    checkpoint = load_checkpoint(checkpoint_path(args))
    results = finetune_reviews(checkpoint, args.train_examples, args.steps, args.lr, args.seed, args.compare, log)
    log("  ".join(f"{name}: accuracy {acc:.3f}" for name, acc in results.items()))
    return 0


def run_attention(args, log):
    from .tasks import task_from_checkpoint
    task = task_from_checkpoint(load_checkpoint(checkpoint_path(args)), log, need_data=False)
    folder = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(folder):
        raise ValueError(f"cannot write {args.out!r}: folder {folder!r} does not exist")
    save_figure(task.attention_figure(args.text, args.layer), args.out)      # .png or .svg
    log(f"attention maps written to {args.out}")
    return 0


def main(argv=None):
    """Entry point; returns the exit code (0 ok, 1 diverged, 2 bad input, 130 interrupted)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    log = print
    try:
        args = parser.parse_args(argv)
        if args.command == "pretrain":
            return run_pretrain(pretrain_settings(argv, parser), log)
        runners = {"generate": run_generate, "evaluate": run_evaluate, "finetune": run_finetune,
                   "attention": run_attention}
        return runners[args.command](args, log)
    except TrainingDiverged as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DIVERGED
    except (ValueError, ModuleNotFoundError, OSError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except NotImplementedError as err:                 # a course kit's student copy, exercise not yet done
        print(f"error: {one_line(err)} (see: python -m numpy_transformer.exercises grade)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def one_line(err):
    return " ".join(str(err).split())
