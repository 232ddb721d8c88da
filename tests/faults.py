"""The damages a file of an index can suffer, the same in every test that injects them."""

from __future__ import annotations

import random
from pathlib import Path

DAMAGES = ["truncate", "garble", "delete"]
GARBLED_BYTES = 8
# Every file of a keyword index folder whose passages have vectors, by path inside the folder: one base
# segment (as a sync leaves it) and the manifest.
SEGMENT_FILES = [
    "blocks.json",
    "entries.jsonl",
    "hashes.json",
    "lengths.npy",
    "numbers.npy",
    "offsets.npy",
    "pair-keys.npy",
    "pair-positions.npy",
    "pair-rows.npy",
    "pair-starts.npy",
    "positions-starts.npy",
    "positions.npy",
    "postings-rows.npy",
    "postings-starts.npy",
    "postings-tf.npy",
    "sections.npy",
    "texts.bin",
    "token-starts.npy",
    "tokens.npy",
    "vectors.bin",
    "word-terms.npy",
    "words.json",
]
KEYWORD_INDEX_FILES = [*(f"base/{name}" for name in SEGMENT_FILES), "manifest.json"]


def damage_file(path: Path, how: str, seed: str) -> None:
    """Truncate the file to half its size, XOR 0xFF at 8 distinct positions chosen by `seed` (an empty file
    gets 64 bytes of junk instead), or delete it. An empty file cannot be truncated: ValueError, rather than
    a damage that changes nothing."""
    if how == "delete":
        path.unlink()
        return
    data = bytearray(path.read_bytes())
    if not data and how == "garble":  # junk where nothing should be
        path.write_bytes(random.Random(seed).randbytes(64))
        return
    if not data:
        raise ValueError(f"{path.name} is empty: there is nothing to {how}")
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garble":
        for position in random.Random(seed).sample(range(len(data)), min(GARBLED_BYTES, len(data))):
            data[position] ^= 0xFF
        path.write_bytes(data)
    else:
        raise ValueError(f"unknown damage '{how}'; use one of: {', '.join(DAMAGES)}")
