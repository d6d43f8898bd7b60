import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

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


def test_no_interests_at_all_is_an_error() -> None:
    with pytest.raises(CommandError, match="Give at least one --about, --keywords"):
        rank("--keywords", " , ", "--exclude", "robots")


def test_a_seeded_topic_ranks_the_bundled_catalogue() -> None:
    call_command("import_papers", *SEEDS, stdout=StringIO(), stderr=StringIO())

    rows = json.loads(rank("--topic", "graph-neural-networks", "--json", "--limit", "5"))

    assert Paper.objects.count() > 150
    assert len(rows) == 5
    for row in rows:
        found = Paper.objects.get(title=row["title"])
        assert "graph" in f"{found.title} {found.abstract}".lower()
        assert row["why"] == "in your topic 'Graph neural networks'"


def test_a_description_alone_ranks_the_catalogue(catalogue) -> None:  # type: ignore[no-untyped-def]
    rows = json.loads(rank("--about", "I predict molecular properties with graphs.", "--json"))
    assert rows[0]["arxiv_id"] == "2501.00002"
    assert {"title", "arxiv_id", "score", "why"} <= set(rows[0])


def test_a_liked_paper_given_any_way_lifts_papers_like_it(catalogue) -> None:  # type: ignore[no-untyped-def]
    paper(
        "Equivariant networks for molecular property prediction",
        "Graph networks predict molecular properties of molecules with equivariance.",
        "2501.00004",
    )
    for ref in (
        "2501.00002v1",
        "https://huggingface.co/papers/2501.00002",
        "https://www.alphaxiv.org/abs/2501.00002",
        "10.48550/arXiv.2501.00002",
        "message passing on molecules",
    ):
        rows = json.loads(rank("--like", ref, "--json"))
        assert rows[0]["arxiv_id"] == "2501.00004", ref  # the liked one itself is left out
        assert "2501.00002" not in [r["arxiv_id"] for r in rows]


def test_a_disliked_paper_and_an_excluded_keyword_are_left_out(catalogue) -> None:  # type: ignore[no-untyped-def]
    both = ("--keywords", "diffusion models, graph neural networks", "--json")
    assert len(json.loads(rank(*both))) == 2
    assert [r["arxiv_id"] for r in json.loads(rank(*both, "--dislike", "2501.00001"))] == [
        "2501.00002"
    ]
    assert [r["arxiv_id"] for r in json.loads(rank(*both, "--exclude", "molecules"))] == [
        "2501.00001"
    ]


def test_a_followed_authors_paper_comes_first_whatever_its_relevance(catalogue) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.filter(title__startswith="Robot").update(authors=["Song Han", "Ji Lin"])
    rows = json.loads(rank("--keywords", "diffusion models", "--author", "Song Han", "--json"))
    assert [(r["title"], r["section"]) for r in rows] == [
        ("Robot grasping from demonstrations", "authors"),
        ("One-step diffusion models", "match"),
    ]
    assert rows[0]["why"] == "by Song Han, whom you follow"


@pytest.mark.parametrize(
    ("option", "ref", "message"),
    [
        ("--like", "2501.99999", "--like '2501.99999': no paper in the catalogue matches it"),
        ("--like", "A Paper Nobody Wrote", "'A Paper Nobody Wrote': no paper in the catalogue"),
        ("--dislike", "2501.123", "--dislike: “2501.123” is not a valid arXiv id"),
        ("--like", "https://example.com/2501.00001", "links to example.com"),
    ],
)
def test_a_ref_that_names_nothing_is_an_error_naming_it(catalogue, option, ref, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match=re.escape(message)):
        rank("--keywords", "diffusion", option, ref)


def test_the_command_exits_non_zero_naming_the_ref(catalogue, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit:
        execute_from_command_line(["manage.py", "rank_papers", "--like", "2501.99999"])
    assert exit.value.code != 0 and "2501.99999" in capsys.readouterr().err
