"""Files as every layer writes them: whole or not at all (write_atomic), and a folder tried
before anything is spent on what goes into it (try_write)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, content: str | bytes) -> None:
    """CONTENT into PATH through a temporary file beside it, renamed over it: a kill during the
    write leaves the old file or none, never half of the new one, and no temporary file."""
    folder = path.parent if str(path.parent) else Path(".")
    mode = "wb" if isinstance(content, bytes) else "w"
    with tempfile.NamedTemporaryFile(mode, dir=folder, prefix=f".{path.name}.",
                                     delete=False) as f:
        try:
            f.write(content)
        except BaseException:  # Ctrl-C included
            os.unlink(f.name)
            raise
    os.replace(f.name, path)


def try_write(folder: Path) -> None:
    """FOLDER takes a new file: tried, by creating and removing one; OSError if not."""
    with tempfile.NamedTemporaryFile(dir=folder):
        pass
