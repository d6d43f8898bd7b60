"""The four parsers on realistic payloads and on broken ones. No database: parsers are pure."""

import contextlib
import html
import json
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from papers.sources import (
    Parsed,
    SourceError,
    arxiv,
    canonical_arxiv_id,
    hf,
    hf_html,
    text,
    title_key,
)
from tests.conftest import examples
from tests.factories import hf_item, hf_json

SEEDS = sorted((Path(__file__).resolve().parent.parent / "papers" / "seeds").glob("*.txt"))

ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <title type="html">ArXiv Query: search_query=cat:cs.LG</title>
  <entry>
    <id>http://arxiv.org/abs/2503.01234v2</id>
    <updated>2026-03-05T10:00:00Z</updated>
    <published>2026-03-03T17:59:59Z</published>
    <title>Learning to Route Tokens
      in Sparse Transformers</title>
    <summary>  We study routing in mixture-of-experts models.
    </summary>
    <author><name>Grace Hopper</name></author>
    <author><name>Edsger Dijkstra</name></author>
    <link href="http://arxiv.org/abs/2503.01234v2" rel="alternate" type="text/html"/>
    <link title="pdf" href="http://arxiv.org/pdf/2503.01234v2" rel="related"/>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/2503.05678v1</id>
    <title></title>
    <summary>No title here.</summary>
  </entry>
</feed>"""


def page(props: object) -> str:
    escaped = html.escape(json.dumps(props), quote=True)
    return (
        '<html><body><main><div class="SVELTE_HYDRATER contents" data-target="DailyPapers" '
        f'data-props="{escaped}"></div></main></body></html>'
    )


# --- Hugging Face JSON -------------------------------------------------------------------------


def test_it_reads_the_nested_daily_papers_item() -> None:
    item = hf_item(
        githubRepo="https://github.com/example/vid", githubStars=120, ai_summary="Short."
    )
    record = hf.parse(hf_json(item)).records[0]
    assert record.arxiv_id == "2503.12345"
    assert record.authors == ["Ada Lovelace", "Alan Turing"]
    assert (record.upvotes, record.comments, record.github_stars) == (42, 3, 120)
    assert record.listed_on == date(2026, 11, 20)
    assert record.published_at == datetime(2026, 11, 20, 17, 59, 1, tzinfo=UTC)
    assert record.github_repo == "https://github.com/example/vid"
    assert (record.ai_summary, record.ai_keywords) == ("Short.", ["diffusion", "video"])


def test_it_strips_the_version_suffix() -> None:
    assert hf.parse(hf_json(hf_item(arxiv_id="2503.12345v3"))).records[0].arxiv_id == "2503.12345"
    assert canonical_arxiv_id("https://arxiv.org/pdf/2401.00001v2.pdf") == "2401.00001"
    assert canonical_arxiv_id("hep-th/9901001v1") == "hep-th/9901001"
    assert canonical_arxiv_id("not an id") is None


def test_missing_counts_are_unknown_not_zero() -> None:
    item = hf_item(upvotes=None, comments=None)
    del item["paper"]["githubStars"]
    record = hf.parse(hf_json(item)).records[0]
    assert (record.upvotes, record.comments, record.github_stars) == (None, None, None)


def test_nonsense_counts_are_unknown() -> None:
    record = hf.parse(hf_json(hf_item(upvotes=-3, comments="many"))).records[0]  # type: ignore[arg-type]
    assert (record.upvotes, record.comments) == (None, None)


def test_bad_items_are_reported_with_their_reason_and_the_rest_parse() -> None:
    untitled = hf_item(arxiv_id="2503.00002")
    untitled["paper"]["title"] = None
    untitled["title"] = ""
    withdrawn = hf_item(arxiv_id="2503.00003", withdrawnAt="2026-11-21T00:00:00.000Z")
    parsed = hf.parse(json.dumps([hf_item(), untitled, "junk", withdrawn, {"paper": []}]))
    assert [r.arxiv_id for r in parsed.records] == ["2503.12345"]
    assert [(i.position, i.reason) for i in parsed.invalid] == [
        (2, "missing title"),
        (3, "not an object but str"),
        (4, "withdrawn"),
        (5, "'paper' is not an object"),
    ]
    assert "2503.00002" in str(parsed.invalid[0])


def test_the_listing_date_falls_back_to_the_given_date() -> None:
    item = hf_item()
    del item["paper"]["submittedOnDailyAt"]
    del item["publishedAt"]
    assert hf.parse(hf_json(item), listing_date=date(2026, 1, 2)).records[0].listed_on == date(
        2026, 1, 2
    )


@pytest.mark.parametrize(
    "payload", ['[{"paper": {"id": "2503.1', "", "null", '{"error": "Invalid date"}']
)
def test_garbled_or_wrong_json_is_refused_as_a_whole(payload: str) -> None:
    with pytest.raises(SourceError):
        hf.parse(payload)


# --- Hugging Face HTML -------------------------------------------------------------------------


def test_the_page_is_read_from_its_data_props() -> None:
    parsed = hf_html.parse(
        page(
            {
                "dailyPapers": [hf_item(), hf_item(arxiv_id="2503.22222", title="B")],
                "dateString": "2026-11-20",
            }
        )
    )
    assert [r.title for r in parsed.records] == ["Scaling Diffusion Transformers for Video", "B"]
    assert parsed.records[0].abstract.startswith("We scale")
    assert parsed.warnings == []


def test_without_props_the_visible_cards_are_read_and_it_says_so() -> None:
    cards = """<html><body>
      <article><a href="/papers/2503.11111"><img src="t.png"></a>
        <h3><a href="/papers/2503.11111">Cards Are Enough</a></h3></article>
      <article><h3><a href="/papers/2503.22222v2">Second Card</a></h3></article>
      <a href="/papers/trending">Trending</a>
    </body></html>"""
    parsed = hf_html.parse(cards)
    assert [(r.arxiv_id, r.title) for r in parsed.records] == [
        ("2503.11111", "Cards Are Enough"),
        ("2503.22222", "Second Card"),
    ]
    assert "visible cards" in parsed.warnings[0]


def test_broken_props_fall_back_to_the_cards() -> None:
    broken = '<div data-target="DailyPapers" data-props="{&quot;dailyPapers&quot;: ["></div>'
    broken += '<h3><a href="/papers/2503.33333">Still Here</a></h3>'
    parsed = hf_html.parse(broken)
    assert parsed.records[0].title == "Still Here"
    assert "unreadable data-props" in parsed.warnings[0]


def test_a_page_with_no_papers_at_all_is_refused() -> None:
    with pytest.raises(SourceError, match="no Daily Papers data"):
        hf_html.parse("<html><body><p>Maintenance</p></body></html>")


# --- arXiv Atom -------------------------------------------------------------------------------


def test_it_reads_an_atom_entry_with_categories_primary_first() -> None:
    parsed = arxiv.parse(ATOM, listing_date=date(2026, 3, 5))
    record = parsed.records[0]
    assert record.arxiv_id == "2503.01234"
    assert record.title == "Learning to Route Tokens in Sparse Transformers"
    assert record.abstract == "We study routing in mixture-of-experts models."
    assert record.authors == ["Grace Hopper", "Edsger Dijkstra"]
    assert record.categories == ["cs.LG", "cs.CL"]
    assert record.listed_on == date(2026, 3, 5)
    assert [(i.position, i.reason) for i in parsed.invalid] == [(2, "missing title")]


def test_an_arxiv_error_feed_is_a_source_error() -> None:
    error = ATOM.replace(
        "http://arxiv.org/abs/2503.01234v2</id>", "http://arxiv.org/api/errors#incorrect_id</id>"
    )
    with pytest.raises(SourceError, match="arXiv answered an error"):
        arxiv.parse(error)


@pytest.mark.parametrize(
    "payload",
    [
        ATOM[: len(ATOM) // 2],
        "<html></html>",
        '<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "a">]><feed/>',
        "",
    ],
)
def test_truncated_foreign_or_entity_laden_xml_is_refused(payload: str) -> None:
    with pytest.raises(SourceError):
        arxiv.parse(payload)


# --- Text captures -----------------------------------------------------------------------------


def blocks_after_heading(path: Path) -> list[str]:
    blocks = [b.strip() for b in re.split(r"\n\s*\n", path.read_text()) if b.strip()]
    heading = next(i for i, b in enumerate(blocks) if re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", b))
    return blocks[heading + 1 :]


@pytest.mark.parametrize("capture", SEEDS, ids=lambda p: p.name)
def test_each_seed_capture_parses_every_paper_with_its_exact_text(capture: Path) -> None:
    body = blocks_after_heading(capture)
    parsed = text.parse(capture.read_text(), today=date(2026, 11, 23))
    assert len(parsed.records) + len(parsed.warnings) == len(body) // 2
    assert parsed.invalid == []
    assert (parsed.records[0].title, parsed.records[0].abstract) == (body[0], body[1])


def test_leftover_latex_is_kept_as_given() -> None:
    capture = next(p for p in SEEDS if "leq 2%" in p.read_text())
    abstracts = [r.abstract for r in text.parse(capture.read_text()).records]
    assert any("leq 2%" in a for a in abstracts)


def test_the_year_is_the_most_recent_one_not_in_the_future() -> None:
    capture = "Subscribe\n\nMar 14\n\nA title\n\nAn abstract."
    assert text.parse(capture, today=date(2026, 11, 23)).records[0].listed_on == date(2026, 3, 14)
    late = capture.replace("Mar 14", "Dec 30")
    assert text.parse(late, today=date(2026, 1, 2)).records[0].listed_on == date(2025, 12, 30)
    leap = capture.replace("Mar 14", "Feb 29")
    assert text.parse(leap, today=date(2026, 11, 23)).records[0].listed_on == date(2024, 2, 29)


def test_a_given_date_wins_over_the_heading() -> None:
    capture = "Mar 14\n\nA title\n\nAn abstract."
    assert text.parse(capture, listing_date=date(2026, 11, 20)).records[0].listed_on == date(
        2026, 11, 20
    )


def test_a_dangling_title_and_a_paragraph_in_a_title_slot_are_reported() -> None:
    paragraph = "word " * 120
    capture = "\n\n".join(
        [
            "Mar 14",
            "Good title",
            "Good abstract.",
            paragraph,
            "Next title",
            "Next abstract.",
            "Dangling title",
        ]
    )
    parsed = text.parse(capture, today=date(2026, 11, 23))
    assert [r.title for r in parsed.records] == ["Good title", "Next title"]
    assert [i.reason for i in parsed.invalid] == [
        "expected a title, found a paragraph of 599 characters",
        "title without an abstract",
    ]


@pytest.mark.parametrize("capture", ["", "   \n\n  ", "Just some words\n\nwithout a date heading"])
def test_an_empty_or_headless_capture_is_refused(capture: str) -> None:
    with pytest.raises(SourceError):
        text.parse(capture)


def test_title_keys_fold_case_accents_and_punctuation() -> None:
    assert title_key("BT^2: Backward-compatible Training") == title_key(
        "bt 2 backward compatible  training"
    )
    assert title_key("Ünïcode Títles") == "unicode titles"


# --- Any input: a Parsed or a SourceError, nothing else ---------------------------------------


@settings(max_examples=examples(150), deadline=None)
@given(st.text(max_size=400))
def test_no_parser_raises_anything_but_source_error(data: str) -> None:
    for parser in (hf.parse, hf_html.parse, arxiv.parse, text.parse):
        with contextlib.suppress(SourceError):
            assert isinstance(parser(data), Parsed)


@settings(max_examples=examples(60), deadline=None)
@given(st.integers(min_value=0, max_value=3000))
def test_truncated_real_payloads_never_crash(cut: int) -> None:
    payloads: dict[Callable[[str], Parsed], str] = {
        hf.parse: hf_json(hf_item(), hf_item(arxiv_id="2503.2")),
        hf_html.parse: page({"dailyPapers": [hf_item()]}),
        arxiv.parse: ATOM,
        text.parse: SEEDS[0].read_text()[:3000],
    }
    for parser, payload in payloads.items():
        with contextlib.suppress(SourceError):
            parser(payload[:cut])
