"""Finding the fenced solution regions in source files and replacing them with stubs."""
import re

# In Python and notebooks the fences are comments; in Markdown, HTML comments (invisible when rendered):
#     <!-- ==== exercise 01 linear-backward ==== -->   ...   <!-- ==== end exercise 01 ==== -->
BEGIN = re.compile(r"^(?P<indent>[ \t]*)(?:#|<!--) ==== exercise (?P<number>\d\d) (?P<slug>[a-z0-9-]+) ===="
                   r"(?: -->)?[ \t]*$")
END = re.compile(r"^[ \t]*(?:#|<!--) ==== end exercise (?P<number>\d\d) ====(?: -->)?[ \t]*$")


class Region:
    """One fenced region: lines[begin] is the opening fence, lines[end] the closing one."""

    def __init__(self, number, slug, indent, begin, end):
        self.number, self.slug, self.indent, self.begin, self.end = number, slug, indent, begin, end

    def __repr__(self):
        return f"Region({self.number}-{self.slug}, lines {self.begin + 1}-{self.end + 1})"


def find_regions(lines, where="source"):
    """All regions in a list of lines (no newline handling needed). Raises ValueError on bad fences."""
    regions, open_region = [], None
    for i, line in enumerate(lines):
        begin, end = BEGIN.match(line), END.match(line)
        if begin:
            if open_region is not None:
                raise ValueError(f"{where}:{i + 1}: exercise {begin['number']} opens inside exercise "
                                 f"{open_region.number}")
            open_region = Region(begin["number"], begin["slug"], begin["indent"], i, None)
        elif end:
            if open_region is None or end["number"] != open_region.number:
                raise ValueError(f"{where}:{i + 1}: 'end exercise {end['number']}' closes nothing open")
            open_region.end = i
            regions.append(open_region)
            open_region = None
    if open_region is not None:
        raise ValueError(f"{where}:{open_region.begin + 1}: exercise {open_region.number} is never closed")
    return regions


def stub_message(exercise):
    return (f"exercise {exercise.id} is yours to write: {exercise.title}. "
            f"Read {exercise.read} and docs/exercises.md#{exercise.id}")


def stub_lines(region, exercise):
    """What replaces a region in the student copy: the fences stay, the body becomes a raise."""
    return [
        f"{region.indent}# ==== exercise {region.number} {region.slug} ====",
        f"{region.indent}# TODO: your code here (see docs/exercises.md#{exercise.id})",
        f"{region.indent}raise NotImplementedError({stub_message(exercise)!r})",
        f"{region.indent}# ==== end exercise {region.number} ====",
    ]


def replace_regions(text, replacement, where="source"):
    """Return text with every region replaced by replacement(region, body_lines) -> list of lines
    (fences included or not, as the caller wants), or None to keep the region as it is."""
    lines = text.split("\n")
    out, position = [], 0
    for region in find_regions(lines, where):
        out.extend(lines[position:region.begin])
        new_lines = replacement(region, lines[region.begin + 1:region.end])
        out.extend(lines[region.begin:region.end + 1] if new_lines is None else new_lines)
        position = region.end + 1
    out.extend(lines[position:])
    return "\n".join(out)


def solution_lines(text, where="source"):
    """{exercise number: [stripped solution lines]} for every region in text."""
    lines = text.split("\n")
    found = {}
    for region in find_regions(lines, where):
        found.setdefault(region.number, []).extend(line.strip() for line in lines[region.begin + 1:region.end])
    return found
