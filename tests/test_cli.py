"""The command line, run as a user runs it (subprocesses): it works end to end, and every bad input
is ONE line on stderr, exit code 2, no traceback, and nothing overwritten."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

TINY = ["--block-size", "16", "--width", "16", "--layers", "1", "--heads", "2", "--batch-size", "4",
        "--no-progress"]
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 20


def cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "numpy_transformer", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def assert_clear_error(result, *fragments):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert len(lines) == 1, f"expected one line, got:\n{result.stderr}"
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "hamlet.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory, corpus):
    """A tiny GPT run made once through the CLI: its directory."""
    run_dir = tmp_path_factory.mktemp("run") / "gpt"
    result = cli("pretrain", "--corpus", corpus, "--steps", 4, "--eval-interval", 2, "--out", run_dir,
                 "--sample-length", 30, *TINY)
    assert result.returncode == 0, result.stderr
    assert "sample:" in result.stdout and "val loss" in result.stdout
    return run_dir


def test_pretrain_end_to_end_writes_checkpoint_metrics_and_plot(run):
    assert {"checkpoint.npz", "metrics.jsonl", "loss.png"} <= set(os.listdir(run))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "val_loss" in r] == [2, 4]


def test_generate_evaluate_attention_on_the_run(run, tmp_path):
    generated = cli("generate", "--run", run, "--prompt", "To be", "--max-new-tokens", 20, "--seed", 1)
    assert generated.returncode == 0 and generated.stdout.startswith("To be"), generated.stderr
    evaluated = cli("evaluate", "--run", run)
    assert evaluated.returncode == 0 and "val_loss" in evaluated.stdout, evaluated.stderr
    png = tmp_path / "attn.png"
    drawn = cli("attention", "--run", run, "--text", "To be", "--out", png)
    assert drawn.returncode == 0, drawn.stderr
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_to_more_steps(run, tmp_path, corpus):
    copy = tmp_path / "resumed"
    copy.mkdir()
    (copy / "checkpoint.npz").write_bytes((run / "checkpoint.npz").read_bytes())
    result = cli("pretrain", "--corpus", corpus, "--steps", 6, "--eval-interval", 2, "--out", copy,
                 "--sample-length", 0, "--resume", *TINY)
    assert result.returncode == 0, result.stderr
    assert "done: 6 steps" in result.stdout


def test_transformer_and_encoder_families_run(tmp_path):
    seq2seq = cli("pretrain", "--model", "transformer", "--corpus", "reverse", "--task-examples", 200,
                  "--task-length", 4, "--steps", 3, "--out", tmp_path / "t", *TINY[2:])
    assert seq2seq.returncode == 0, seq2seq.stderr
    assert "exact_match" in seq2seq.stdout
    decoded = cli("generate", "--run", tmp_path / "t", "--prompt", "1234", "--temperature", 0)
    assert decoded.returncode == 0, decoded.stderr
    encoder = cli("pretrain", "--model", "encoder", "--steps", 3, "--out", tmp_path / "e", *TINY)
    assert encoder.returncode == 0, encoder.stderr
    tuned = cli("finetune", "--run", tmp_path / "e", "--steps", 3, "--train-examples", 8)
    assert tuned.returncode == 0 and "from scratch: accuracy" in tuned.stdout, tuned.stderr


def test_ctrl_c_saves_and_exits_cleanly(tmp_path, corpus):
    out = tmp_path / "interrupted"
    process = subprocess.Popen([sys.executable, "-m", "numpy_transformer", "pretrain", "--corpus", str(corpus),
                                "--steps", "100000", "--out", str(out), *TINY], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and process.poll() is None and not (
            metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted at step" in stdout
    assert (out / "checkpoint.npz").exists()


# --- bad input: one line, exit code 2, nothing overwritten ---------------------------------------

def test_empty_missing_and_non_utf8_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_clear_error(cli("pretrain", "--corpus", empty), "is empty")
    assert_clear_error(cli("pretrain", "--corpus", tmp_path / "missing.txt"), "does not exist")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\u00e9 cr\u00e8me ".encode("latin-1") * 50)
    assert_clear_error(cli("pretrain", "--corpus", latin1), "not UTF-8")
    assert_clear_error(cli("pretrain", "--corpus", "shakespear"), "neither a known corpus")
    assert not (tmp_path / "runs").exists()


def test_prompt_with_unknown_characters(run):
    assert_clear_error(cli("generate", "--run", run, "--prompt", "To be \u20ac"), "not in the vocabulary", "\u20ac")


def test_checkpoint_from_another_config_is_refused_and_kept(run, tmp_path, corpus):
    copy = tmp_path / "other"
    copy.mkdir()
    original = (run / "checkpoint.npz").read_bytes()
    (copy / "checkpoint.npz").write_bytes(original)
    result = cli("pretrain", "--corpus", corpus, "--steps", 6, "--out", copy, "--resume", *TINY[:2],
                 "--width", "32", *TINY[4:])
    assert_clear_error(result, "width=16 (this run: 32)")
    assert (copy / "checkpoint.npz").read_bytes() == original
    assert not (copy / "metrics.jsonl").exists()


def test_checkpoint_of_another_version_truncated_or_corrupted(run, tmp_path):
    with np.load(run / "checkpoint.npz", allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["format_version"] = np.array(99)
    np.savez(tmp_path / "future.npz", **arrays)
    assert_clear_error(cli("generate", "--checkpoint", tmp_path / "future.npz"), "format version 99")
    data = (run / "checkpoint.npz").read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 3])
    assert_clear_error(cli("evaluate", "--checkpoint", tmp_path / "truncated.npz"), "truncated or corrupted")
    assert_clear_error(cli("generate", "--checkpoint", tmp_path / "nothing.npz"), "does not exist")


def test_unknown_flag_and_wrong_typed_value():
    assert_clear_error(cli("pretrain", "--stepz", 3), "unrecognized arguments: --stepz")
    assert_clear_error(cli("pretrain", "--steps", "three"), "--steps", "three")
    assert_clear_error(cli("pretrain", "--lr", "-1"), "--lr")
    assert_clear_error(cli("fly"), "invalid choice")


def test_block_size_larger_than_the_corpus(corpus):
    assert_clear_error(cli("pretrain", "--corpus", corpus, "--block-size", 5000, "--steps", 1),
                       "block size 5000 is larger than")


def test_config_file_settings_and_errors(tmp_path, corpus):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"corpus": str(corpus), "steps": 2, "eval_interval": 2, "block_size": 16,
                                "width": 16, "layers": 1, "heads": 2, "batch_size": 4, "progress": False,
                                "out": str(tmp_path / "from_config"), "sample_length": 0}))
    result = cli("pretrain", "--config", good, "--steps", 3)           # a typed flag beats the file
    assert result.returncode == 0, result.stderr
    assert "done: 3 steps" in result.stdout
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"stepz": 2}))
    assert_clear_error(cli("pretrain", "--config", unknown), f"config file {str(unknown)!r}: unknown setting(s) 'stepz'")
    broken = tmp_path / "broken.json"
    broken.write_text("{steps: 2")
    assert_clear_error(cli("pretrain", "--config", broken), "not valid JSON")
    mistyped = tmp_path / "mistyped.json"                               # argparse's own message named no file
    mistyped.write_text(json.dumps({"steps": 2.5}))
    assert_clear_error(cli("pretrain", "--config", mistyped),
                       f"config file {str(mistyped)!r}: argument --steps: must be a whole number >= 1, got '2.5'")
    assert_clear_error(cli("pretrain", "--steps", "x"), "argument --steps: must be a whole number >= 1, got 'x'")   # typed: as before
    dashed = tmp_path / "dashed.json"                                   # a value beginning with "-" reaches the check
    dashed.write_text(json.dumps({"corpus": "-no such file.txt"}))
    assert_clear_error(cli("pretrain", "--config", dashed), "-no such file.txt")


@pytest.mark.parametrize("settings, message", [
    ({"data-parallel": True}, "'data-parallel' takes a value, not true"),     # argparse said only "expected one argument"
    ({"steps": False}, "'steps' takes a value, not false"),
    ({"width": None}, "'width' takes a value, not null"),                       # not Python's "None" handed on
    ({"resume": "yes"}, "'resume' takes true or false, not \"yes\""),
    ({"decay_embeddings": 1}, "'decay_embeddings' takes true or false, not 1"),
    ({"no-progress": "on"}, "'no-progress' takes true or false, not \"on\"")])
def test_config_file_true_and_false_only_for_switches(tmp_path, settings, message):
    from numpy_transformer.cli import build_parser, read_config_file
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    with pytest.raises(ValueError) as error:
        read_config_file(str(path), build_parser())
    assert str(error.value) == f"config file {str(path)!r}: {message}"


@pytest.mark.parametrize("settings, tokens", [
    ({"no-progress": True, "resume": False}, ["--no-progress"]),           # a switch by its flag's name, as --help shows
    ({"progress": False, "decay_embeddings": True}, ["--no-progress", "--decay-embeddings"]),
    ({"progress": True, "no_progress": False, "steps": 3}, ["--steps=3"]),
    ({"corpus": "-odd name.txt"}, ["--corpus=-odd name.txt"]),              # a value may begin with "-"
    ({"decay_embedding": True}, ["--decay-embedding=True"])])               # unknown: the caller names it
def test_config_file_switches_become_flags(tmp_path, settings, tokens):
    from numpy_transformer.cli import build_parser, read_config_file
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    assert read_config_file(str(path), build_parser()) == tokens


def test_help_on_every_command(capsys):
    from numpy_transformer.cli import build_parser          # in-process: five interpreter starts saved
    for command in ("pretrain", "generate", "evaluate", "finetune", "attention"):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: python -m numpy_transformer {command}" in capsys.readouterr().out
    assert cli("--help").returncode == 0                        # and once through the real entry point


def test_a_finished_run_is_never_replaced_by_accident(run, tmp_path, corpus):
    before = (run / "checkpoint.npz").read_bytes()
    assert_clear_error(cli("pretrain", "--corpus", corpus, "--steps", 2, "--out", run, *TINY), "already holds a checkpoint",
                       "--resume", "--overwrite")
    assert (run / "checkpoint.npz").read_bytes() == before
    first = subprocess.run([sys.executable, "-m", "numpy_transformer", "pretrain", "--corpus", str(corpus),
                            "--steps", "2", "--sample-length", "0", *TINY], cwd=tmp_path, capture_output=True, text=True)
    second = subprocess.run([sys.executable, "-m", "numpy_transformer", "pretrain", "--corpus", str(corpus),
                             "--steps", "2", "--sample-length", "0", *TINY], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2 and folders[1] == folders[0] + "-2"
    assert "already holds a finished run" in second.stdout


def test_abbreviated_flags_are_refused(run):
    assert_clear_error(cli("generate", "--run", run, "--temp", "0.5"), "unrecognized arguments: --temp")
    assert_clear_error(cli("pretrain", "--step", "3"), "unrecognized arguments: --step")
    assert_clear_error(cli("generate", "--run", run, "--temperature", "hot"), "must be a number >= 0, got 'hot'")


def test_summary_names_backend_and_threads_and_a_time_limit_says_it_stopped(tmp_path, corpus):
    first = cli("pretrain", "--corpus", corpus, "--steps", 50, "--time-limit", 0.001, "--data-parallel", 2,
                "--out", tmp_path / "r", "--sample-length", 0, *TINY)
    assert first.returncode == 0, first.stderr
    assert "4 sequences, " in first.stdout and "2 threads share each batch" in first.stdout
    assert "stopped by --time-limit at step 1 of 50" in first.stdout and "--resume continues it" in first.stdout
    resumed = cli("pretrain", "--corpus", corpus, "--steps", 2, "--data-parallel", 1, "--out", tmp_path / "r",
                  "--sample-length", 0, "--resume", *TINY)
    assert resumed.returncode == 0, resumed.stderr
    assert "one thread (no batch split)" in resumed.stdout
    assert "the run so far split each batch across 2 thread(s), this part across 1" in resumed.stdout
