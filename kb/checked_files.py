"""A record of the index folder's files as a sync left them after checking them whole, so that the next
sync, finding nobody has changed them since, does not read them all again.

Before Chroma opens its store a sync reads every byte of it (kb.chroma_checks, with SQLite's check of every
page), and it compares every stored vector with the replica's copy (`Mirror.verify_vectors`): at 100,000
entries, seconds of reading 4 GB on every sync. A sync that ends with the store checked (or made, or
written by it after a check) records each file under `chroma/` and `lexical/`: its size, modification and
change times and inode, with the collection, the index's mark and the machine's boot. The next sync,
before anything opens the store, compares: the same files, each as recorded, the same mark in the store's
database, no restart in between, and it skips those reads. A process that only reads does the same before
Chroma opens (kb.parts: the checks at open; kb.mirror: the comparison before its first answer), and any
process opening the replica reads no CRC-32 of a file the record vouches for (kb.replica.files.vouch_for).

A write to a file moves its change time, and only the kernel sets that (putting the modification time
back with `touch -d` or `os.utime` moves it too), so a file edited, truncated, replaced or copied in is
read again. A restart voids the record (a crash may keep a file's times and lose its data), as does any
damage a process finds (it deletes the record, so the sync it asks for reads everything), any write to
the index (a save deletes it first) and a symbolic link among the files (its target's changes would not
show). Opening the store in another process (the app starting, `python -m kb search`) changes Chroma's
database file, so the next sync or reader reads everything once. Damage below the file system (a failing disk) is
what `python -m kb sync --verify` is for: it reads everything, whatever the record says. A record that
cannot be read is no record.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from kb.errors import IndexDamaged

log = logging.getLogger(__name__)

RECORD = "checked-files"
WATCHED = ("chroma", "lexical")  # the embedded store and the replica, each folder whole
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")  # Linux's id of this boot; elsewhere no record is trusted


FileKey = tuple[int, int, int, int, int]  # device, inode, size, modification and change times (ns)


def file_key(status: os.stat_result) -> FileKey:
    """What identifies a file and its last write: any write moves the change time, which only the kernel sets."""
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns


# The files this process found as a record has them (`CheckedFiles.vouch_for`), until any record is dropped.
_vouched: set[FileKey] = set()
_vouched_lock = threading.Lock()


def vouched(status: os.stat_result) -> bool:
    """Whether a file (by its status now) is one a record vouches for: as a sync that checked it left it."""
    with _vouched_lock:
        return file_key(status) in _vouched


class CheckedFiles:
    """The record in one index folder; see the module docstring."""

    def __init__(self, index_dir: Path | str, collection: str):
        self.root = Path(index_dir)
        self.collection = collection
        self.path = self.root / RECORD

    def generation_if_unchanged(self) -> str | None:
        """The index's mark as recorded, when every watched file is as the record has it (and the record is
        this collection's, from this boot); else None."""
        return self._recorded_generation(self._stats())

    def vouch_for(self, folder: Path) -> None:
        """While the record holds, the files under `folder` (inside the index folder) are as the sync that
        checked them left them: whoever checks them may take them as checked while each keeps its device,
        inode, size and both times (`vouched`). The replica's files are opened without reading their
        CRC-32s (kb.replica.files), 1.4 GB at 100,000 entries."""
        found = self._stats()
        if found is None or self._recorded_generation(found) is None:
            return
        try:
            under = Path(folder).relative_to(self.root).as_posix() + "/"
        except ValueError:
            return
        keys = [file_key(status) for name, status in found.items() if name.startswith(under)]
        with _vouched_lock:
            if len(_vouched) > 4096:  # a long-running process forgets the files of syncs long past
                _vouched.clear()
            _vouched.update(keys)

    def _recorded_generation(self, found: dict[str, os.stat_result] | None) -> str | None:
        try:
            recorded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(recorded, dict) or not isinstance(recorded.get("generation"), str):
            return None
        boot = _boot_id()
        if not boot or recorded.get("boot") != boot or recorded.get("collection") != self.collection:
            return None
        files = _as_recorded(found)
        return recorded["generation"] if files is not None and recorded.get("files") == files else None

    def record(self, generation: str) -> None:
        """The watched files, as they are now, hold the index at this mark, checked. Logged, not raised, when
        the record cannot be written: the next sync then checks everything, which is all it costs."""
        files, boot = _as_recorded(self._stats()), _boot_id()
        if files is None or not boot:
            self.forget()
            return
        record = {"collection": self.collection, "generation": generation, "boot": boot, "files": files}
        temporary = self.path.with_name(f".{RECORD}.tmp")
        try:
            with temporary.open("w", encoding="utf-8") as file:
                json.dump(record, file)
                file.flush()
                os.fsync(file.fileno())
            temporary.replace(self.path)
        except OSError:
            log.warning("cannot record the checked index files in %s", self.path, exc_info=True)
            self.forget()

    def forget(self) -> None:
        forget_checked(self.root)

    def _stats(self) -> dict[str, os.stat_result] | None:
        """Each watched file's status by its path in the folder; None when a symbolic link is among them,
        or a file goes while they are listed."""
        found: dict[str, os.stat_result] = {}
        try:
            for top in WATCHED:
                for path in sorted((self.root / top).rglob("*")):
                    if path.is_symlink():
                        return None
                    status = path.lstat()
                    if path.is_file():
                        found[path.relative_to(self.root).as_posix()] = status
        except OSError:
            return None
        return found


def _as_recorded(found: dict[str, os.stat_result] | None) -> dict[str, list[int]] | None:
    """The files as the record keeps them: size, modification and change times, inode."""
    if found is None:
        return None
    return {name: [s.st_size, s.st_mtime_ns, s.st_ctime_ns, s.st_ino] for name, s in found.items()}


def store_damaged(index_dir: Path | str, reason: str, *, where: str | Path = "") -> IndexDamaged:
    """The error for damage found in the embedded store of this index folder, wherever it is found (the
    checks before Chroma opens it, Chroma itself, the comparison of the vectors): the record goes with it,
    so the `python -m kb sync` the message asks for reads every file again."""
    forget_checked(index_dir)
    return IndexDamaged(reason, where=where)


def forget_checked(index_dir: Path | str) -> None:
    """Drop the record: the next sync or reader reads every file of the index again, and this process
    reads again the files it took as vouched for. Before any write to the index, and with any damage found
    (`store_damaged`, kb.mirror when the replica is damaged)."""
    path = Path(index_dir) / RECORD
    with _vouched_lock:
        _vouched.clear()  # nothing vouched for by any record is taken as checked any more
    try:
        path.unlink(missing_ok=True)
    except OSError:
        log.warning("cannot remove %s; a sync may skip reading files it checked before", path, exc_info=True)


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""
