"""A record of the index folder's files as a sync left them after checking them whole, so that the next
sync, finding nobody has changed them since, does not read them all again.

Before Chroma opens its store a sync reads every byte of it (kb.chroma_checks, with SQLite's check of every
page), and it compares every stored vector with the replica's copy (`Mirror.verify_vectors`): at 100,000
entries, seconds of reading 4 GB on every sync. A sync that ends with the store checked (or written by it
after a check) records each file under `chroma/` and `lexical/`: its size, modification and change times
and inode. The next sync, before anything opens the store, compares: the same files, each as recorded,
and it skips those reads. A write to a file moves its change time, and only the kernel sets that (putting
the modification time back with `touch -d` or `os.utime` moves it too), so a file edited, truncated,
replaced or copied in is checked again; damage below the file system (a failing disk) is what `python -m kb
sync --verify` is for: it reads everything, whatever the record says. A record that cannot be read is no
record: everything is checked.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

RECORD = "checked-files"
WATCHED = ("chroma", "lexical")  # the embedded store and the replica, each folder whole


class CheckedFiles:
    """The record in one index folder; see the module docstring."""

    def __init__(self, index_dir: Path | str):
        self.root = Path(index_dir)
        self.path = self.root / RECORD

    def unchanged(self) -> str | None:
        """The index's mark as recorded, when every watched file is as the record has it; else None."""
        try:
            recorded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("generation"), str):
            return None
        try:
            return recorded["generation"] if recorded.get("files") == self._files() else None
        except OSError:  # a file went while being listed: changed
            return None

    def record(self, generation: str) -> None:
        """The watched files, as they are now, hold the index at this mark, checked. Logged, not raised, when
        the record cannot be written: the next sync then checks everything, which is all it costs."""
        temporary = self.path.with_name(f".{RECORD}.tmp")
        try:
            temporary.write_text(json.dumps({"generation": generation, "files": self._files()}), encoding="utf-8")
            temporary.replace(self.path)
        except OSError:
            log.warning("cannot record the checked index files in %s", self.path, exc_info=True)
            self.forget()

    def forget(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            log.warning("cannot remove %s; the next sync checks every file anyway", self.path, exc_info=True)

    def _files(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for top in WATCHED:
            for path in sorted((self.root / top).rglob("*")):
                if path.is_symlink() or path.is_file():
                    status = path.lstat()
                    found[path.relative_to(self.root).as_posix()] = [
                        status.st_size,
                        status.st_mtime_ns,
                        status.st_ctime_ns,
                        status.st_ino,
                    ]
        return found
