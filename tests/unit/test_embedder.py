"""Embedders: the fake one is deterministic; a tampered model file refuses to load."""

from __future__ import annotations

import numpy as np
import pytest

from kb.embedder import HashingEmbedder, ModelIntegrityError, make_embedder, verify_model_file


def test_hashing_embedder_is_deterministic_unit_and_word_based():
    embedder = HashingEmbedder()
    a, b, c = embedder.embed(["data sharing agreement", "data sharing agreement", "sourdough baking"])
    assert np.allclose(a, b) and abs(np.linalg.norm(a) - 1) < 1e-6
    assert a @ b > a @ c


def test_make_embedder_selects_by_name():
    assert isinstance(make_embedder("hashing-bow"), HashingEmbedder)
    assert make_embedder("all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"


def test_tampered_model_file_refuses_to_load(tmp_path):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not the real weights")
    with pytest.raises(ModelIntegrityError, match="damaged or was replaced"):
        verify_model_file(weights, "0" * 64)
    with pytest.raises(ModelIntegrityError, match="not found"):
        verify_model_file(tmp_path / "missing.safetensors", "0" * 64)


def test_a_short_batch_runs_on_one_thread_and_a_long_one_on_all():
    """A query on two busy cores: PyTorch's threads waiting on each other cost 40 times the work."""
    import torch

    from kb.embedder import SHORT_BATCH, SentenceTransformerEmbedder

    seen = []

    class Model:
        def encode(self, texts, **_):
            seen.append((len(texts), torch.get_num_threads()))
            return np.zeros((len(texts), 4), dtype=np.float32)

    class Loaded(SentenceTransformerEmbedder):
        model = Model()  # what `model` gives once loaded, without loading the real one

    before = torch.get_num_threads()
    embedder = Loaded()
    embedder.embed(["one query"])
    embedder.embed(["a passage"] * (SHORT_BATCH + 1))
    assert seen == [(1, 1), (SHORT_BATCH + 1, before)]
    assert torch.get_num_threads() == before
