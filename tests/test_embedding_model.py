"""A pretrained static embedding model (PAPERS_EMBEDDING_MODEL): loaded once, at worker start,
never at import, and used for semantic relevance. The model is a tiny model2vec model this
test builds itself: no download."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from model2vec import StaticModel
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace

from config.celery import load_embedding_model
from papers.ranking import Interests, PaperText, Signal, fit_model, rank_catalogue
from papers.ranking import embedding as embedding_module
from papers.ranking_data import embedding_model

# Two directions of meaning: vehicles and cooking. "automobile" and "car" mean the same.
WORDS = {
    "[UNK]": [0.0, 0.0],
    "automobile": [1.0, 0.0],
    "car": [1.0, 0.0],
    "engine": [0.9, 0.1],
    "recipe": [0.0, 1.0],
    "soup": [0.1, 0.9],
}


def tiny_model(path: Path) -> Path:
    vocab = {word: n for n, word in enumerate(WORDS)}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()  # type: ignore[assignment]
    vectors = np.array(list(WORDS.values()), dtype=np.float32)
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(path)
    return path


@pytest.fixture
def model_path(tmp_path: Path, settings) -> Path:  # type: ignore[no-untyped-def]
    path = tiny_model(tmp_path / "tiny-model")
    settings.PAPERS_EMBEDDING_MODEL = str(path)
    return path


def test_the_worker_loads_the_model_once_as_it_starts(model_path: Path) -> None:
    load_embedding_model()  # what Celery calls as a worker process starts

    assert str(model_path) in embedding_module.loaded()
    assert embedding_model() is embedding_model()  # the same object: loaded once


def test_without_a_model_nothing_is_loaded(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_EMBEDDING_MODEL = ""

    assert embedding_model() is None


def test_importing_the_ranking_loads_no_embedding_library() -> None:
    code = (
        "import sys, django; django.setup(); import papers.ranking, newsletter.digests; "
        "print('model2vec' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert found.stdout.strip() == "False"


def test_the_model_matches_meaning_not_shared_words(model_path: Path) -> None:
    car = PaperText(1, "A faster car", "The car engine runs faster.")
    soup = PaperText(2, "A better soup", "A recipe for soup.")
    papers = [car, soup]

    picks = rank_catalogue(
        fit_model(papers, embedding_model()), papers, Interests(about="automobile")
    )

    assert [p.key for p in picks] == [car.key]
    assert picks[0].reason.signal == Signal.DESCRIPTION
    assert picks[0].reason.text == "close in meaning to your description"


def test_a_model_that_cannot_be_loaded_says_which(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_EMBEDDING_MODEL = str(tmp_path / "missing")

    with pytest.raises(embedding_module.EmbeddingModelError, match="missing"):
        embedding_model()
