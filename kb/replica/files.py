"""The replica folder's files checked against what was written: a manifest lists every file with its size
and CRC-32, checked whenever the folder is opened (but for the CRC-32 of a file a checked-files record
vouches for: kb.checked_files); a folder with a damaged, missing or truncated file
counts as absent (and is rebuilt from the vector index), never half trusted. A file damaged after that
check makes the read that finds it mark the folder untrusted instead of raising out of a search."""

from __future__ import annotations

import collections
import functools
import json
import logging
import os
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kb.checked_files import vouched
from kb.errors import KBError

log = logging.getLogger("kb.replica")


# 9: each passage's section kept (sections.npy, its names in blocks.json); 8: content hashes kept by each
# segment, not in the manifest; 7: pairs of common words kept for
# phrases; 6: segments (a base and a delta with its dead entries); 5: the manifest lists every file's
# size and checksum; 4: the passages' vectors kept too.
FORMAT_VERSION = 9  # a folder of an older format is rebuilt once


MANIFEST = "manifest.json"
# In each segment: the content hashes of the entries it changes, every entry's for a base, and for a
# delta those new or changed since the base, null for an entry gone. A save so writes its entry's
# hash, not 100,000 of them.
HASHES = "hashes.json"


CHECK_CHUNK = 4 << 20  # bytes read at a time while a file's checksum is taken
REMEMBERED_CHECKSUM = 1 << 20  # files from this size up keep their checksum in memory (see `_checksum`)


# What reading a damaged file can raise (a UnicodeDecodeError or a JSON error is a ValueError).
READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, EOFError)


class DamagedFile(ValueError):
    """A file of the folder is not as it was written; the message starts with its name."""


class KeywordIndexDamaged(KBError):
    """The folder an update would copy from is damaged: only a rebuild from the vector index can help."""


def loaded(name: str, load: Callable):
    """`load()`, a parse of the file `name`, with what goes wrong named after the file."""
    try:
        return load()
    except READ_ERRORS as exc:
        raise DamagedFile(f"{name}: {reason(exc)}") from exc


def reason(exc: BaseException) -> str:
    return str(exc)[:160] or exc.__class__.__name__


FolderId = tuple[int, int]  # a directory's device and inode: which folder a path names at the moment


@dataclass(frozen=True)
class Manifest:
    """What a folder's manifest.json records: the vector index's mark it last matched, its segments
    (oldest first) and the entries whose rows in the older ones are dead, and every other file of the
    folder with its size and CRC-32 as written. The entry versions it was built from are the segments'
    (kb.replica.segment.HASHES): a save rewrites this file, so it stays small."""

    generation: str | None
    files: dict[str, dict[str, int]]  # path relative to the folder -> {"size": bytes, "crc32": checksum}
    segments: list[str]
    dead: list[str]
    # Read from the segments' HASHES files by `open_checked`, never written into the manifest:
    hashes: dict[str, str] = field(default_factory=dict)  # the ledger the folder was built from
    later: dict[str, str | None] = field(default_factory=dict)  # what the segments after the base change

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "generation": self.generation,
                "segments": self.segments,
                "dead": self.dead,
                "files": self.files,
            }
        )

    @classmethod
    def from_json(cls, meta: dict) -> Manifest:
        """Raises ValueError, KeyError or TypeError for a manifest without a well-formed file list."""
        files, segments, dead = meta["files"], meta["segments"], meta["dead"]
        if not isinstance(files, dict):
            raise TypeError("files must be an object")
        if not isinstance(dead, list) or not all(isinstance(e, str) for e in dead):
            raise TypeError("dead must be a list of entry ids")
        if not isinstance(segments, list) or not all(isinstance(n, str) and n.isidentifier() for n in segments):
            raise ValueError("segments must be a list of folder names")
        for name, recorded in files.items():
            parts = Path(name).parts
            if not parts or Path(name).is_absolute() or ".." in parts:
                raise ValueError(f"'{name}' is not a path inside the folder")
            if not all(isinstance(recorded.get(k), int) for k in ("size", "crc32")):
                raise ValueError(f"'{name}' has no size and checksum")
        return cls(meta.get("generation") or None, files, segments, dead)


def folder_id(folder: Path) -> FolderId | None:
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _crc32(file) -> int:
    """The CRC-32 of an open file's bytes, read a chunk at a time (never a whole large file at once)."""
    crc, buffer = 0, bytearray(CHECK_CHUNK)
    view = memoryview(buffer)
    while size := file.readinto(buffer):
        crc = zlib.crc32(view[:size], crc)
    return crc


# A large file's CRC-32 by (device, inode, size, mtime), most recently used last.
_checksums: collections.OrderedDict[tuple[int, int, int, int], int] = collections.OrderedDict()
_checksums_lock = threading.Lock()


def _checksum(file, remembered: bool = True) -> int:
    """The CRC-32 of an open file. A large one keeps it in this process's memory while the file is
    unchanged: a save links the base segment's files into the new folder rather than copying them, so
    checking that folder would otherwise read the whole collection again for one entry. What such a
    file suffers without its size or time changing is found by the read that meets it, by the next
    process that opens the folder, or (`remembered` False) before a merge copies every byte of it."""
    found = os.fstat(file.fileno())
    if found.st_size < REMEMBERED_CHECKSUM:
        return _crc32(file)
    key = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    with _checksums_lock:
        crc = _checksums.get(key) if remembered else None
        if crc is not None:
            _checksums.move_to_end(key)
            return crc
    crc = _crc32(file)
    with _checksums_lock:
        _checksums[key] = crc
        while len(_checksums) > 256:
            _checksums.popitem(last=False)
    return crc


def file_list(folder: Path) -> dict[str, dict[str, int]]:
    """Every file of a folder but its manifest, by path relative to the folder: its size and CRC-32."""
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name != MANIFEST and path.is_file():
            with path.open("rb", buffering=0) as file:
                files[name] = {"size": os.fstat(file.fileno()).st_size, "crc32": _checksum(file)}
    return files


def open_checked(folder: Path, remembered: bool = True) -> tuple[Manifest | None, str | None, FolderId | None]:
    """The folder's manifest if every file it lists is there as it was written, else what is wrong;
    and which folder was read. No manifest and no complaint: no folder, or one of another format.

    Files are opened relative to the folder's own handle, so all of them come from one folder even if
    another process swaps in a new one meanwhile; a fault seen while that happened is checked again on
    the new folder rather than reported (the old one is deleted after the swap).
    """
    manifest, damage, read = None, None, None
    for _ in range(3):
        try:
            directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None, None, None
        except OSError as exc:
            return None, f"{folder.name}: {exc.strerror}", None
        try:
            found = os.fstat(directory)
            read = (found.st_dev, found.st_ino)
            manifest, damage = _check(directory, remembered)
        finally:
            os.close(directory)
        if damage is None or folder_id(folder) == read:
            break
    return manifest, damage, read


def _check(directory: int, remembered: bool = True) -> tuple[Manifest | None, str | None]:
    """Read the manifest of the folder open as `directory` and check the files it lists: sizes first
    (a stat each), then checksums."""
    try:
        with open(os.open(MANIFEST, os.O_RDONLY, dir_fd=directory), "rb") as file:
            meta = json.loads(file.read())
    except FileNotFoundError:
        return None, f"{MANIFEST}: missing"
    except READ_ERRORS:
        return None, f"{MANIFEST}: not readable as JSON"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        return None, None  # written by another version: rebuilt, not damaged
    try:
        manifest = Manifest.from_json(meta)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"{MANIFEST}: no valid file list"
    for name, recorded in manifest.files.items():
        try:
            size = os.stat(name, dir_fd=directory).st_size
        except FileNotFoundError:
            return None, f"{name}: missing"
        except OSError as exc:
            return None, f"{name}: {exc.strerror}"
        if size != recorded["size"]:
            return None, f"{name}: {size:,} bytes, {recorded['size']:,} when written"
    for name, recorded in manifest.files.items():
        try:
            with open(os.open(name, os.O_RDONLY, dir_fd=directory), "rb", buffering=0) as file:
                if remembered and vouched(os.fstat(file.fileno())):
                    continue  # as a sync that checked it left it (kb.checked_files)
                crc = _checksum(file, remembered)
        except OSError as exc:
            return None, f"{name}: {exc.strerror}"
        if crc != recorded["crc32"]:
            return None, f"{name}: checksum mismatch"
    try:
        return _with_hashes(directory, manifest), None
    except READ_ERRORS as exc:
        return None, damage_of("the content hashes", exc)


def _with_hashes(directory: int, manifest: Manifest) -> Manifest:
    """The manifest with the ledger its segments' HASHES files give, read through the same directory
    handle as every file checked above, so all come from one folder."""
    hashes: dict[str, str] = {}
    later: dict[str, str | None] = {}
    for i, name in enumerate(manifest.segments):
        with open(os.open(f"{name}/{HASHES}", os.O_RDONLY, dir_fd=directory), "rb") as file:
            if i == 0:
                hashes = dict(base_hashes(file, f"{name}/{HASHES}"))
                continue
            found = parsed_hashes(file.read(), f"{name}/{HASHES}")
        later |= found
        for entry_id, digest in found.items():
            if digest is None:
                hashes.pop(entry_id, None)
            else:
                hashes[entry_id] = digest
    return replace(manifest, hashes=hashes, later=later)


def parsed_hashes(data: bytes, name: str) -> dict[str, str | None]:
    """A HASHES file's content hashes; DamagedFile when they are not an object of strings (or nulls)."""
    found = loaded(name, lambda: json.loads(data))
    if not isinstance(found, dict) or not all(isinstance(v, str) or v is None for v in found.values()):
        raise DamagedFile(f"{name}: not an object of content hashes")
    return found


# The last base segment's hashes read, by its file's (device, inode, size, mtime): a save links the base
# into the new folder, so opening that folder finds the same file. One: a sync leaves the old ones dead.
_base_hashes: tuple[tuple[int, int, int, int], dict[str, str]] | None = None
_base_hashes_lock = threading.Lock()


def base_hashes(file, name: str) -> dict[str, str]:
    """A base segment's content hashes from its open HASHES file, parsed once per process while the
    file is the same (100,000 take tens of milliseconds); the dict is shared, never to be changed.
    DamagedFile for a base that lists an entry as gone: only a later segment can."""
    global _base_hashes
    found = os.fstat(file.fileno())
    key = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    with _base_hashes_lock:
        if _base_hashes is not None and _base_hashes[0] == key:
            return _base_hashes[1]
    read = parsed_hashes(file.read(), name)
    if None in read.values():
        raise DamagedFile(f"{name}: a base segment lists an entry as gone")
    hashes = {k: v for k, v in read.items() if v is not None}
    with _base_hashes_lock:
        _base_hashes = (key, hashes)
    return hashes


_reported: set[tuple[str, FolderId | None, str]] = set()  # damage already logged by this process


def report_damage(folder: Path, folder_id: FolderId | None, damage: str) -> None:
    """Log a damaged folder once per process: a sync opens the folder up to three times."""
    if (str(folder), folder_id, damage) not in _reported:
        _reported.add((str(folder), folder_id, damage))
        log.warning(
            "the keyword index at %s is damaged (%s): treated as absent until rebuilt from the vector index",
            folder,
            damage,
        )


def damage_of(what: str, exc: BaseException) -> str:
    """What is wrong, for `damage` and the log: a DamagedFile names its file, else `what` was being read."""
    return str(exc) if isinstance(exc, DamagedFile) else f"{what}: {reason(exc)}"


def untrusted_if_damaged(what: str, absent: Callable[[], object]):
    """For a read of the folder's files. The folder was checked when opened, but a file can be damaged
    since: the read that finds it marks the folder untrusted (as if absent, so the knowledge base
    rebuilds it) and gives what an absent index gives, `absent()`, instead of raising out of a search."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except READ_ERRORS as exc:
                self._distrust(damage_of(what, exc))
                return absent()

        return wrapper

    return decorate


def locked(method):
    """One search or update at a time: the app's sessions share one index object across threads."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper
