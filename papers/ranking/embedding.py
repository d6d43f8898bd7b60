"""A pretrained static embedding model (model2vec), when the operator names one.

``PAPERS_EMBEDDING_MODEL`` is a local path or a model name on the Hugging Face hub. The model
is loaded once per process, by the worker as it starts (``config/celery.py``) or by the
first ranking that needs it, never when this module is imported: a web process that never
ranks never loads it, and nothing is downloaded at import.
"""

from __future__ import annotations

import threading

from papers.ranking.semantic import Encoder

_loaded: dict[str, Encoder] = {}
_lock = threading.Lock()


class EmbeddingModelError(Exception):
    """The configured model cannot be loaded; the message says which and why."""


def load(name: str) -> Encoder:
    """The model2vec ``StaticModel`` at ``name`` (a path or a hub name), loaded once."""
    with _lock:
        if name not in _loaded:
            from model2vec import StaticModel  # heavy (tokenizers, safetensors): only when used

            try:
                _loaded[name] = StaticModel.from_pretrained(name, force_download=False)
            except Exception as exc:
                raise EmbeddingModelError(
                    f"PAPERS_EMBEDDING_MODEL={name!r} could not be loaded: {exc}"
                ) from exc
        return _loaded[name]


def loaded() -> list[str]:
    """The models this process has loaded (to check that loading happens once)."""
    return list(_loaded)
