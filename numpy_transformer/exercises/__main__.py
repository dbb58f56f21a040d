"""python -m numpy_transformer.exercises {list, make-student OUT_DIR, grade [--exercise ID] [--json PATH]}

Exit codes of grade: 0 when every graded exercise passed, 1 when any did not, 2 for a bad command line.
"""
import argparse
import sys

from .registry import LADDER


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m numpy_transformer.exercises",
                                     description="The course kit: list exercises, make a student copy, grade.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the exercise ladder in course order")
    make = commands.add_parser("make-student", help="write a student copy with every solution removed")
    make.add_argument("out_dir", help="a new (or empty) directory")
    grade_cmd = commands.add_parser("grade", help="grade the exercises in this copy, offline")
    grade_cmd.add_argument("--exercise", action="append", help="an exercise number, name or id (repeatable)")
    grade_cmd.add_argument("--json", metavar="PATH", help="also write the result as JSON")
    args = parser.parse_args(argv)

    try:
        if args.command == "list":
            for e in LADDER:
                needs = f"  (after {', '.join(e.requires)})" if e.requires else ""
                print(f"{e.id:28s} ~{e.minutes:3d} min  {e.title}{needs}")
            return 0
        if args.command == "make-student":
            from .student import make_student_copy
            out_dir, numbers = make_student_copy(args.out_dir)
            print(f"wrote the student copy to {out_dir} ({len(numbers)} exercises stubbed)")
            return 0
        from .grade import grade, report, write_json
        results = grade(args.exercise)
        print(report(results))
        if args.json:
            write_json(results, args.json)
        return 0 if all(r.status == "passed" for r in results) else 1     # a gate for course platforms
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
