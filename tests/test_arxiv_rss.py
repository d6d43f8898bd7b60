"""arXiv's daily announcement feeds, current RSS and old RDF, from published captures
(tests/fixtures/README.md), imported through the command as an operator would."""

import re
from datetime import date
from pathlib import Path

import pytest

from papers.importing import detect_format
from papers.models import Paper
from tests.factories import hf_item, hf_json, http_server
from tests.test_import_papers import run_import

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CURRENT = FIXTURES / "arxiv_rss_cs.LG_2026-05-22.xml"
OLD = FIXTURES / "arxiv_rdf_hep-ex_2018-05-23.xml"
OLD_LATEX = FIXTURES / "arxiv_rdf_hep-ex_2021-07-08.xml"
TRUNCATED = FIXTURES / "arxiv_rss_cs.AI_2025-09-18_truncated.xml"
pytestmark = pytest.mark.django_db


def variant(tmp_path: Path, change: str = "", **replacements: str) -> str:
    """The current capture with some text replaced; ``change`` names the file."""
    text = CURRENT.read_text()
    for old, new in replacements.items():
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / f"{change or 'feed'}.xml"
    path.write_text(text)
    return str(path)


def test_new_and_cross_listings_are_listed_on_the_announcement_day() -> None:
    code, out, err = run_import(str(CURRENT))

    assert code == 0, err
    assert out.startswith("3 new, 0 updated, 0 unchanged, 2 skipped")
    maxwell = Paper.objects.get(arxiv_id="2605.20514")
    assert maxwell.title == "Fast Reconstruction of Exact Maxwell Dynamics from Sparse Data"
    assert maxwell.abstract.startswith("We introduce FLASH-MAX, a shallow")
    assert maxwell.categories == ["cs.LG", "cs.NA", "math.NA", "stat.ML"]
    assert maxwell.authors[-1] == r"Bogdan Rai\c{t}\u{a}"  # LaTeX kept as arXiv gives it
    assert maxwell.listed_on == date(2026, 5, 22) and maxwell.source == "arxiv-rss"
    assert Paper.objects.get(arxiv_id="2605.21915").listed_on == date(2026, 5, 22)  # cross


def test_a_replacement_updates_a_known_paper_and_never_makes_it_new() -> None:
    known = Paper.objects.create(
        arxiv_id="2603.22430",
        title="Inference Time Policy Optimization",
        abstract="v1 text",
        listed_on=date(2026, 3, 24),
        source="hf-json",
    )

    code, out, _ = run_import(str(CURRENT))

    known.refresh_from_db()
    assert "3 new, 1 updated" in out and "1 skipped" in out and code == 0
    assert known.abstract.startswith("Offline Reinforcement Learning (RL) learns optimal")
    assert known.listed_on == date(2026, 3, 24) and known.source == "hf-json"
    assert not Paper.objects.filter(arxiv_id="2601.18973").exists()  # replace-cross, unknown


def test_the_old_rdf_feed_imports_with_its_titles_cleaned() -> None:
    code, out, err = run_import(str(OLD), str(OLD_LATEX))

    assert code == 0, err
    assert out.startswith("4 new, 0 updated, 0 unchanged, 2 skipped")  # the two UPDATED
    spin = Paper.objects.get(arxiv_id="1805.08875")
    assert spin.title == "Measurement of Transverse Single Spin Asymmetries"
    assert spin.authors == ["Christopher Dilks"]  # from the HTML author-search links
    assert spin.abstract.startswith("In 2015 the first collisions") and "<p>" not in spin.abstract
    assert spin.listed_on == date(2018, 5, 23) and spin.categories == ["hep-ex"]
    lhcb = Paper.objects.get(arxiv_id="2107.03419")
    latex = r"$\Omega_c^0$ baryons in $\Omega_b^- \to \Xi_c^+ K^-\pi^-$ decays"
    assert lhcb.title == f"Observation of excited {latex}"
    assert Paper.objects.get(arxiv_id="2106.00550").categories == ["math.GR"]  # CROSS LISTED


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("arxiv_rss_cs.LG_2026-05-22.xml", "arxiv-rss"),
        ("arxiv_rdf_hep-ex_2018-05-23.xml", "arxiv-rss"),
        ("arxiv_rss_cs.AI_2025-09-18_truncated.xml", "arxiv-rss"),
        ("arxiv_api_1706.03762.xml", "arxiv"),
        ("hf_paper_2509.04664.json", "hf-json"),
        ("handwritten_capture.txt", "text"),
    ],
)
def test_format_auto_recognises_each_capture(fixture: str, expected: str) -> None:
    assert detect_format((FIXTURES / fixture).read_text()) == expected


def test_a_paper_on_arxiv_and_on_daily_papers_is_one_row_with_both_signals(tmp_path: Path) -> None:
    listing = tmp_path / "daily.json"
    listing.write_text(
        hf_json(
            hf_item(
                arxiv_id="2605.21127",
                title="Reasoning-Trace Collapse",
                upvotes=31,
                day="2026-05-23",
            )
        )
    )
    run_import(str(listing))
    run_import(str(CURRENT))

    paper = Paper.objects.get(arxiv_id="2605.21127")
    assert paper.upvotes == 31 and paper.categories == ["cs.LG"]
    assert paper.listed_on == date(2026, 5, 22)  # the earlier listing
    assert Paper.objects.filter(title__startswith="Reasoning-Trace Collapse").count() == 1


def test_the_same_paper_listed_under_two_categories_is_held_once(tmp_path: Path) -> None:
    item = re.search(r"    <item>\n      <title>CCLab.*?</item>\n", CURRENT.read_text(), re.S)
    assert item
    twice = variant(tmp_path, "twice", **{"  </channel>": item.group(0) + "  </channel>"})

    code, out, err = run_import(twice)

    assert code == 0 and out.startswith("3 new")
    assert "item 6: 2605.21915 is listed again; kept once" in err


def test_html_in_a_title_is_read_as_text_and_a_missing_abstract_is_said(tmp_path: Path) -> None:
    feed = variant(
        tmp_path,
        "odd",
        **{
            "<title>CCLab: Adversarial": "<title>&lt;i&gt;CCLab&lt;/i&gt;: Adversarial",
            "Abstract: Explicit reasoning models": "Abstract: ",
        },
    )
    feed_text = Path(feed).read_text()
    Path(feed).write_text(re.sub(r"(Abstract: )[^<]*(</description>)", r"\1\2", feed_text, count=1))

    code, _, err = run_import(feed)

    assert code == 0
    assert Paper.objects.get(arxiv_id="2605.21915").title.startswith("CCLab: Adversarial")
    assert Paper.objects.get(arxiv_id="2605.21127").abstract == ""
    assert "item 1 (2605.21127): no abstract; imported without one" in err


def test_a_truncated_feed_keeps_what_came_before_the_cut(tmp_path: Path) -> None:
    text = CURRENT.read_text()
    cut = tmp_path / "cut.xml"
    cut.write_text(text[: text.index("Abstract: Congestion controllers") + 40])

    code, out, err = run_import(str(cut), str(TRUNCATED))

    assert code == 1
    assert out.startswith("2 new")  # the two items before the cut in the first file
    assert "cut.xml item 3: cut off where the feed ends" in err
    assert "truncated.xml item 1: cut off where the feed ends" in err
    assert "the feed is truncated" in err


def test_an_html_error_page_where_a_feed_was_expected_is_a_clear_failure() -> None:
    page = (
        "<!DOCTYPE html><html><head><title>503 Service Unavailable</title></head>"
        "<body>Busy</body></html>"
    )
    with http_server(lambda path, nth: (200, "text/html", page)) as base:
        code, _, err = run_import(f"{base}/rss/cs.LG", format="arxiv-rss")

    assert code == 1
    assert "an HTML page where a feed was expected: '503 Service Unavailable'" in err


def test_a_503_with_a_long_retry_after_fails_the_source_and_the_rest_import(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_FETCH_MAX_WAIT = 30
    busy = (503, "text/plain", "busy", {"Retry-After": "3600"})
    with http_server(lambda path, nth: busy) as base:
        code, out, err = run_import(f"{base}/rss/cs.LG", str(CURRENT))

    assert code == 1 and out.startswith("3 new")
    assert f"{base}/rss/cs.LG: HTTP 503, asked to retry after 3600 s" in err
