"""Generated sections of a Markdown file (docs/results.md): the text between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` is replaced, the rest of the file kept."""
from __future__ import annotations

import os
import re


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_marked_sections(path: str, bodies: dict[str, str], heading: str) -> None:
    """Put each ``bodies[name]`` between ``name``'s markers in ``path``. One the file lacks goes
    after the last section of the same study already there (``data:<study>:`` names: a study's
    later tables join its heading), else, in order, into one new ``## heading`` section at the
    file's end (a missing file becomes ``# Results`` and that section)."""
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    missing = []
    for name, body in bodies.items():
        start, end = markers(name)
        section = f"{start}\n{body}\n{end}"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + section + rest.split(end, 1)[1]
            continue
        study = re.escape(name.rsplit(":", 1)[0] + ":")
        siblings = list(re.finditer(rf"<!-- {study}[^ :]+:end -->", text))
        if siblings:
            at = siblings[-1].end()
            text = text[:at] + "\n\n" + section + text[at:]
        else:
            missing.append(section)
    if missing:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + "\n\n".join(missing) + "\n"
    with open(path, "w") as f:
        f.write(text)


def write_marked_section(path: str, name: str, body: str, heading: str) -> None:
    """One section of :func:`write_marked_sections`."""
    write_marked_sections(path, {name: body}, heading)
