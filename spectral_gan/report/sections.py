"""Generated sections of a Markdown file (docs/results.md): the text between
``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` is replaced, the rest of the file kept."""
from __future__ import annotations

import os


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def write_marked_section(path: str, name: str, body: str, heading: str) -> None:
    """Put ``body`` between ``name``'s markers in ``path``; a file without them gets a new
    ``## heading`` section at its end (a missing file becomes ``# Results`` and that section)."""
    start, end = markers(name)
    text = open(path).read() if os.path.exists(path) else "# Results\n"
    section = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n## {heading}\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
