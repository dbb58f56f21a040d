"""The course kit, end to end: generate a student copy, grade it, restore solutions, plant mistakes.

Everything runs in a real student copy in a temporary directory, in subprocesses whose PYTHONPATH
puts that copy first, exactly as a student would run it.
"""
import json
import os
import re
import subprocess
import sys
from xml.etree import ElementTree
from pathlib import Path

import pytest

from numpy_transformer.exercises.registry import LADDER
from numpy_transformer.exercises.regions import find_regions
from numpy_transformer.exercises.student import REPO_ROOT, count_regions, make_student_copy, restore_solutions

GRADED = [e for e in LADDER]


def run(student, *args, timeout=300):
    env = dict(os.environ, PYTHONPATH=str(student), NUMBA_CACHE_DIR=str(student / ".numba_cache"))
    return subprocess.run([sys.executable, *args], cwd=student, env=env, capture_output=True, text=True,
                          timeout=timeout)


def grade(student, *exercises):
    out = student / "grade.json"
    args = ["-m", "numpy_transformer.exercises", "grade", "--json", str(out)]
    for exercise in exercises:
        args += ["--exercise", exercise]
    result = run(student, *args)
    results = {r["exercise"]: r for r in json.loads(out.read_text())["exercises"]}
    all_passed = all(r["status"] == "passed" for r in results.values())
    assert result.returncode == (0 if all_passed else 1), result.stderr
    return results


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "student"
    make_student_copy(out)
    return out


def test_every_exercise_is_fenced_and_numbered_in_course_order():
    counts = count_regions()
    assert sorted(counts) == [e.number for e in LADDER]
    assert [e.number for e in LADDER] == [f"{i:02d}" for i in range(1, len(LADDER) + 1)]
    assert len(LADDER) >= 12
    docs = (REPO_ROOT / "docs" / "exercises.md").read_text()
    for exercise in LADDER:
        assert f"## {exercise.id}" in docs, f"docs/exercises.md has no section for {exercise.id}"


def test_student_copy_has_stubs_no_solutions_no_caches(student):
    stubs = 0
    for path in student.rglob("*.py"):
        text = path.read_text()
        stubs += len(re.findall(r"raise NotImplementedError\(['\"]exercise \d\d-", text))
        for region in find_regions(text.split("\n"), str(path)):
            body = text.split("\n")[region.begin + 1:region.end]
            assert any("NotImplementedError" in line for line in body), f"{path}: {region} kept its solution"
    assert stubs == sum(count_regions().values())
    leftovers = [p for p in student.rglob("*") if p.suffix in (".pyc", ".nbi", ".nbc") or p.name == "__pycache__"]
    assert leftovers == []
    assert not (student / "numpy_transformer" / "kernels").exists()
    assert not (student / "numpy_transformer" / "exercises" / "instructor").exists()
    for notebook in (student / "notebooks").glob("*.ipynb"):
        cells = json.loads(notebook.read_text())["cells"]
        assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")


def test_student_copy_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="is not empty"):
        make_student_copy(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_grader_on_a_fresh_copy_finds_nothing_done(student):
    results = grade(student)
    assert len(results) == len(LADDER)
    for exercise_id, result in results.items():
        assert result["status"] in ("not done", "blocked"), (exercise_id, result)
        assert result["score"] == 0
    assert results["01-linear-backward"]["status"] == "not done"
    assert "07-layernorm" in results["11-residual-backward"]["messages"][0]


def test_student_copy_imports_and_its_non_exercise_tests_pass(student):
    result = run(student, "-c", "import numpy_transformer, numpy_transformer.models, numpy_transformer.train, "
                                "numpy_transformer.exercises.grade, numpy_transformer.backend as b; "
                                "print(numpy_transformer.__file__, b.get_backend())")
    assert result.returncode == 0, result.stderr
    assert str(student) in result.stdout and "numpy" in result.stdout.split()[-1]
    tests = run(student, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests", timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "needs exercise" in tests.stdout and " passed" in tests.stdout


def test_each_exercise_tests_fail_with_not_implemented_before_it_is_done(student):
    markers = " or ".join(e.marker for e in LADDER)
    report = student / "strict.xml"
    run(student, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-exercises", "-m", markers,
        f"--junitxml={report}", "tests", timeout=600)
    cases = ElementTree.parse(report).getroot().iter("testcase")
    failures_by_marker = {e.marker: [] for e in LADDER}
    for case in cases:
        failure = case.find("failure")
        assert failure is not None, f"{case.get('name')} passed in a copy with no exercise done"
        assert failure.get("message", "").startswith("NotImplementedError: exercise"), failure.get("message")
        for prop in case.iter("property"):
            for marker in prop.get("value").split(","):
                failures_by_marker[marker].append(case.get("name"))
    for marker, failed in failures_by_marker.items():
        assert failed, f"no test carries the marker {marker}"


# Mistakes planted on purpose: (exercise, file, a solution line, its wrong replacement, expected diagnosis);
# a list of (right, wrong) pairs in place of the line when one mistake touches several lines.
MISTAKES = [
    ("01", "layers/linear.py", "dweight = x_rows.T @ dy_rows", "dweight = dy_rows.T @ x_rows",
     "transposed gradient"),
    ("01", "layers/linear.py", "dbias = dy_rows.sum(axis=0) if has_bias else None", "dbias = dy_rows.sum(axis=0)",
     None),
    ("08", "layers/attention.py", "scores = (q @ k.swapaxes(-1, -2)) * scale", "scores = q @ k.swapaxes(-1, -2)",
     "missing 1/sqrt(d_k)"),
    ("08", "layers/attention.py", [("scores = np.where(mask, -np.inf, scores)", "pass"),
                                   ("weights, _ = softmax_forward(scores)",
                                    "weights, _ = softmax_forward(scores); mask = build_attention_mask(T, S, causal, "
                                    "key_padding_mask); weights = weights if mask is None else np.where(mask, 0.0, "
                                    "weights)")], None, "mask applied after the softmax"),
    ("05", "layers/embedding.py", "np.add.at(dweight, ids.reshape(-1), dout.reshape(-1, dout.shape[-1]))",
     "dweight[ids.reshape(-1)] = dout.reshape(-1, dout.shape[-1])", "repeated ids overwritten instead of accumulated"),
    ("07", "layers/layernorm.py", "var = (xc * xc).mean(axis=-1, keepdims=True)",
     "var = (xc * xc).sum(axis=-1, keepdims=True) / (x.shape[-1] - 1)", "unbiased instead of biased variance"),
    ("03", "layers/softmax.py", "exps = np.exp(x - row_max)", "exps = np.exp(x)", "max not subtracted"),
    ("04", "layers/loss.py", "loss = -(target_dist * log_probs).sum() / num_counted",
     "loss = -(target_dist * log_probs).sum()", "constant factor"),
]


def test_restoring_solutions_makes_each_exercise_pass_and_planted_mistakes_are_named(student):
    for exercise in LADDER:                              # in course order, as a student would go
        restore_solutions(student, [exercise.number])
        result = grade(student, exercise.number)[exercise.id]
        assert result["status"] == "passed", result
    markers = " or ".join(e.marker for e in LADDER)
    tests = run(student, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--strict-exercises", "-m", markers,
                "tests", timeout=600)
    assert tests.returncode == 0, tests.stdout[-3000:]

    for number, relative, right, wrong, diagnosis in MISTAKES:
        path = student / "numpy_transformer" / relative
        original = path.read_text()
        planted = original
        for right_line, wrong_line in (right if wrong is None else [(right, wrong)]):
            assert planted.count(right_line) == 1, f"{relative}: cannot find {right_line!r} to plant a mistake"
            planted = planted.replace(right_line, wrong_line)
        path.write_text(planted)
        try:
            result = next(iter(grade(student, number).values()))
        finally:
            path.write_text(original)
        assert result["status"] == "failed", result
        if diagnosis is None:                            # wrong, but no named mistake for it
            continue
        assert diagnosis in result["mistakes"], f"planted {diagnosis!r}, grader said {result['messages']}"
        assert any(diagnosis in message for message in result["messages"])


def test_grader_command_line_errors_are_one_line(student):
    result = run(student, "-m", "numpy_transformer.exercises", "grade", "--exercise", "99")
    assert result.returncode == 2
    assert result.stderr.startswith("error: unknown exercise '99'") and "Traceback" not in result.stderr


def test_fixtures_are_up_to_date_with_the_solutions():
    import numpy as np
    from numpy_transformer.exercises.grade import load_fixture
    from numpy_transformer.exercises.instructor.make_fixtures import build
    for exercise in LADDER:
        stored, fresh = load_fixture(exercise.number), build(exercise.number)
        assert sorted(stored) == sorted(fresh), f"fixture {exercise.number}: regenerate with make_fixtures"
        for name in fresh:
            np.testing.assert_allclose(stored[name], fresh[name], rtol=1e-12, atol=1e-14,
                                       err_msg=f"fixture {exercise.number} {name}: regenerate with make_fixtures")
