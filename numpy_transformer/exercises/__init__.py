"""The course kit: exercises fenced in the library source, a student-copy generator and an offline grader.

    python -m numpy_transformer.exercises list
    python -m numpy_transformer.exercises make-student OUT_DIR
    python -m numpy_transformer.exercises grade [--exercise ID] [--json PATH]

See docs/instructors.md (for teachers) and docs/exercises.md (for students).
"""
