"""Write the student copy: the whole project, with every fenced solution region replaced by a
NotImplementedError naming the exercise, and the instructor-only files left out.

The copy is checked before it is declared done: no solution line may appear anywhere in it (code,
comments, docs, notebooks), and no cache or compiled file is copied.
"""
import json
import shutil
import subprocess
from pathlib import Path

from .regions import find_regions, replace_regions, solution_lines, stub_lines
from .registry import find

REPO_ROOT = Path(__file__).resolve().parents[2]

# Left out of the student copy, and why.
INSTRUCTOR_ONLY = (
    "numpy_transformer/kernels/",              # fused Numba kernels compute the same math as the solutions
    "numpy_transformer/bench.py",              # benchmarks the kernels
    "numpy_transformer/exercises/instructor/", # builds fixtures with solution code
    "tests/test_kernels",                      # kernel parity tests (kernels are left out)
    "tests/test_torch_reference.py",
    "tests/test_bench",
    "tests/test_exercises.py",                 # the kit's own tests plant mistakes into solutions
    "notebooks/06_",                           # the kernels notebook
    "docs/instructors.md",
    "docs/kernels.md",
    ".ci/",
)
SKIP_PARTS = {".git", "__pycache__", ".venv", ".pytest_cache", ".ipynb_checkpoints", "runs", "build", "dist"}
SKIP_SUFFIXES = (".pyc", ".pyo", ".nbi", ".nbc", ".egg-info", ".so")
STUDENT_README = """# numpy_transformer: your course copy

The Transformer of "Attention Is All You Need" in NumPy, with hand-written forward and backward passes.
In this copy, fourteen pieces are yours to write: each is a fenced region in the library source that
raises `NotImplementedError` naming the exercise. Everything else (the other layers, the three model
families, the trainer, the data, the notebooks, the tests) is complete and waits for your code.

## Set up, then check where you are

```bash
python3 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt
python -m numpy_transformer.exercises list      # the exercises, in order, with time estimates
python -m numpy_transformer.exercises grade     # what is done, what is not, and likely mistakes
```

Read [docs/exercises.md](docs/exercises.md) first: one section per exercise, with where to write it,
what to read, and how it is checked. The derivations are in [docs/derivations/](docs/derivations/README.md).

## Tests

```bash
python -m pytest -q                             # unwritten exercises show as skipped ("needs exercise NN")
python -m pytest -q -m ex07 --strict-exercises  # the tests of one exercise
```

## Once the exercises are done

The main job works: `python -m numpy_transformer pretrain` trains a small GPT on Shakespeare in a few
minutes and prints a sample. `python -m numpy_transformer --help` lists the other commands. The
notebooks in `notebooks/` teach each piece (00 quick start, 01 a tour, 02 backpropagation by hand,
03 attention maps, 04 pretraining, 05 the encoder, 07 a real pretrained model); they run as soon as the
exercises they use are written.

This copy runs on the NumPy reference backend (the course leaves the optimised kernels out). Install it
in its own virtual environment, as above, so that `import numpy_transformer` finds this copy.
"""
MARKDOWN_NOTE = "*(This part shows the solution line by line; it is left out of the student copy.)*"
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".txt", ".toml", ".json", ".cfg", ".xml", ".yml", ".yaml", ""}


def project_files(root):
    """Files of the project: the files git tracks when it is a checkout (so stray outputs such as a
    figure left in the folder are not handed out), else a walk; caches never included."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.split("\n")
        paths = [Path(line) for line in listed if line]
    except (OSError, subprocess.CalledProcessError):
        paths = [p.relative_to(root) for p in root.rglob("*") if p.is_file()]
    keep = []
    for path in paths:
        text = path.as_posix()
        if SKIP_PARTS & set(path.parts) or text.endswith(SKIP_SUFFIXES) or any(
                part.endswith(".egg-info") for part in path.parts):
            continue
        if any(text.startswith(prefix) for prefix in INSTRUCTOR_ONLY):
            continue
        if (root / path).is_file():
            keep.append(path)
    return sorted(keep)


def stub_python(text, where):
    return replace_regions(text, lambda region, body: stub_lines(region, find(region.number)), where)


def stub_markdown(text, where):
    return replace_regions(text, lambda region, body: [MARKDOWN_NOTE], where)


def stub_notebook(text, where):
    notebook = json.loads(text)
    for cell in notebook.get("cells", []):
        source = "".join(cell.get("source", []))
        if cell.get("cell_type") == "code":
            source = stub_python(source, where)
            cell["outputs"], cell["execution_count"] = [], None
        else:
            source = stub_markdown(source, where)
        cell["source"] = source.splitlines(keepends=True)
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def collect_solutions(root, files):
    """{exercise number: [solution lines]} over every fenced region in the project."""
    found = {}
    for path in files:
        if path.suffix not in (".py", ".md", ".ipynb"):
            continue
        text = (root / path).read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c.get("source", [])) for c in json.loads(text).get("cells", []))
        for number, lines in solution_lines(text, str(path)).items():
            found.setdefault(number, []).extend(lines)
    return found


def is_telling(line):
    """A solution line worth hiding: real code, not a fence, comment, bracket or short keyword."""
    code = line.split("#")[0].strip()
    return len(code) >= 12 and not code.startswith(("<!--", "|")) and code not in ("else:",)


def given_library_text(out_dir):
    """All of the student copy's library code: what is given there (a forward, a docstring) gives
    nothing away when a solution line happens to repeat it."""
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted((Path(out_dir) / "numpy_transformer").rglob("*.py")))


def find_leaks(out_dir, solutions):
    """[(file, exercise, line)] for solution lines that appear anywhere in the student copy, except
    lines the library's given code already contains."""
    given = given_library_text(out_dir)
    telling = {(number, line.split("#")[0].strip()) for number, lines in solutions.items()
               for line in lines if is_telling(line)}
    telling = {(number, code) for number, code in telling if code not in given}
    leaks = []
    for path in sorted(p for p in Path(out_dir).rglob("*") if p.is_file()):
        if path.suffix not in TEXT_SUFFIXES:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if path.suffix == ".ipynb":
            text = "\n".join("".join(c.get("source", [])) for c in json.loads(text).get("cells", []))
        for number, code in telling:
            if code in text:
                leaks.append((str(path.relative_to(out_dir)), number, code))
    return leaks


def make_student_copy(out_dir, root=REPO_ROOT, force=False):
    """Write the student copy to out_dir (which must not exist, or be empty, unless force)."""
    root, out_dir = Path(root), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not force:
        raise ValueError(f"output directory {out_dir} is not empty; choose a new one (nothing was written)")
    files = project_files(root)
    solutions = collect_solutions(root, files)
    staging = out_dir.with_name(out_dir.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    for path in files:
        source, target = root / path, staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py":
            target.write_text(stub_python(source.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
        elif path.suffix == ".md":
            target.write_text(stub_markdown(source.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
        elif path.suffix == ".ipynb":
            target.write_text(stub_notebook(source.read_text(encoding="utf-8"), str(path)), encoding="utf-8")
        else:
            shutil.copy2(source, target)
    (staging / "README.md").write_text(STUDENT_README, encoding="utf-8")     # the course's own front page
    leaks = find_leaks(staging, solutions)
    if leaks:
        shutil.rmtree(staging)
        shown = "; ".join(f"{f}: exercise {n}: {c!r}" for f, n, c in leaks[:5])
        raise ValueError(f"the student copy would leak {len(leaks)} solution line(s): {shown}")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    staging.rename(out_dir)
    return out_dir, sorted(solutions)


def count_regions(root=REPO_ROOT):
    """{exercise number: number of fenced regions} in the project (used by tests and docs)."""
    counts = {}
    for path in project_files(Path(root)):
        if path.suffix == ".py":
            for region in find_regions((Path(root) / path).read_text(encoding="utf-8").split("\n"), str(path)):
                counts[region.number] = counts.get(region.number, 0) + 1
    return counts


def restore_solutions(student_dir, numbers, root=REPO_ROOT):
    """Put the instructor's solution regions for the given exercise numbers back into a student copy
    (used by the kit's tests, and by an instructor checking a copy). Returns the files changed."""
    student_dir, root = Path(student_dir), Path(root)
    numbers = {find(n).number for n in numbers}
    changed = []
    for path in project_files(root):
        if path.suffix not in (".py", ".md", ".ipynb") or not (student_dir / path).exists():
            continue
        original = (root / path).read_text(encoding="utf-8")
        if path.suffix == ".ipynb":
            continue        # notebooks: their own stubs stay (the grader does not run them)
        bodies = {}
        for region in find_regions(original.split("\n"), str(path)):
            if region.number in numbers:
                bodies.setdefault(region.number, []).append(original.split("\n")[region.begin:region.end + 1])
        if not bodies:
            continue
        counters = {number: 0 for number in bodies}

        def put_back(region, body):
            if region.number not in bodies:
                return None                                   # another exercise: left as it is
            solution = bodies[region.number][counters[region.number]]
            counters[region.number] += 1
            return solution

        text = (student_dir / path).read_text(encoding="utf-8")
        (student_dir / path).write_text(replace_regions(text, put_back, str(path)), encoding="utf-8")
        changed.append(path)
    return changed

