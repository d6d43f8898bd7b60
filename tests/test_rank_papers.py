import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from papers.models import Paper

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(str(p) for p in (ROOT / "papers" / "seeds").glob("*.txt"))


def paper(title: str, abstract: str, arxiv_id: str | None = None, upvotes: int = 0) -> Paper:
    return Paper.objects.create(
        title=title,
        title_key=title.lower(),
        abstract=abstract,
        arxiv_id=arxiv_id,
        upvotes=upvotes,
        source="text",
    )


@pytest.fixture
def catalogue() -> list[Paper]:
    return [
        paper(
            "One-step diffusion models",
            "We distill diffusion models into one-step image generators.",
            "2501.00001",
            upvotes=120,
        ),
        paper(
            "Message passing on molecules",
            "Graph neural networks predict molecular properties by message passing.",
            "2501.00002",
        ),
        paper("Robot grasping from demonstrations", "Robots learn to grasp objects."),
    ]


def rank(*args: str) -> str:
    out = StringIO()
    call_command("rank_papers", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_relevant_papers_best_first_with_why(catalogue) -> None:  # type: ignore[no-untyped-def]
    table = rank("--keywords", "diffusion models")

    lines = table.splitlines()
    assert "One-step diffusion models" in lines[1]
    assert "matches your keyword 'diffusion models'" in lines[1]
    assert "Robot grasping" not in table  # below the relevance floor


def test_json_output_lists_title_arxiv_id_score_and_why(catalogue) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(rank("--keywords", "graph neural networks, diffusion", "--json"))

    by_id = {row["arxiv_id"]: row for row in rows}
    assert set(by_id) == {"2501.00001", "2501.00002"}
    graphs = by_id["2501.00002"]
    assert graphs["title"] == "Message passing on molecules"
    assert isinstance(graphs["score"], float) and graphs["score"] > 0
    assert graphs["why"] == "matches your keyword 'graph neural networks'"
    assert (graphs["signal"], graphs["matched"]) == ("keyword", ["graph neural networks"])


def test_limit_caps_the_list(catalogue) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(rank("--keywords", "diffusion", "--keywords", "graph", "--json"))
    capped = json.loads(
        rank("--keywords", "diffusion", "--keywords", "graph", "--json", "--limit", "1")
    )

    assert len(rows) == 2
    assert capped == rows[:1]


def test_an_unknown_topic_is_an_error_that_lists_the_valid_ones(catalogue) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError) as error:
        rank("--topic", "alchemy")

    assert "alchemy" in str(error.value)
    assert "graph-neural-networks" in str(error.value)


def test_no_keywords_and_no_topic_is_an_error() -> None:
    with pytest.raises(CommandError, match="--keywords or --topic"):
        rank("--keywords", " , ")


def test_a_seeded_topic_ranks_the_bundled_catalogue() -> None:
    call_command("import_papers", *SEEDS, stdout=StringIO(), stderr=StringIO())

    rows = json.loads(rank("--topic", "graph-neural-networks", "--json", "--limit", "5"))

    assert Paper.objects.count() > 150
    assert len(rows) == 5
    for row in rows:
        found = Paper.objects.get(title=row["title"])
        assert "graph" in f"{found.title} {found.abstract}".lower()
        assert row["why"] == "in your topic 'Graph neural networks'"
