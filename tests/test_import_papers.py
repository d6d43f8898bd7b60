import re
from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from papers.importing import import_sources
from papers.models import Paper, PaperSnapshot
from papers.sources import title_key
from tests.factories import hf_item, hf_json, http_server

SEEDS = sorted((Path(__file__).resolve().parent.parent / "papers" / "seeds").glob("*.txt"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"
pytestmark = pytest.mark.django_db


def papers_in_capture(path: Path) -> list[tuple[str, str]]:
    """(title, abstract) pairs read straight from a capture, independently of the parser."""
    blocks = [b.strip() for b in re.split(r"\n\s*\n", path.read_text()) if b.strip()]
    heading = next(i for i, b in enumerate(blocks) if re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}", b))
    body = blocks[heading + 1 :]
    return list(zip(body[0::2], body[1::2], strict=True))


def run_import(*sources: str, **options: str) -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    try:
        call_command("import_papers", *sources, stdout=out, stderr=err, **options)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_all_four_seed_captures_hold_each_paper_once_with_its_exact_text() -> None:
    expected: dict[str, tuple[str, str]] = {}
    for capture in SEEDS:
        for title, abstract in papers_in_capture(capture):
            expected.setdefault(title_key(title), (title, abstract))

    code, out, _ = run_import(*map(str, SEEDS))

    assert code == 0
    assert Paper.objects.count() == len(expected)
    for paper in Paper.objects.all():
        assert (paper.title, paper.abstract) == expected[paper.title_key]
    assert out.startswith(f"{len(expected)} new,")


def test_a_second_import_of_the_seeds_reports_nothing_new_or_updated() -> None:
    run_import(*map(str, SEEDS))
    code, out, _ = run_import(*map(str, SEEDS))
    assert code == 0
    assert out.startswith("0 new, 0 updated")


def test_a_capture_written_by_hand_imports_like_the_seeds() -> None:
    capture = FIXTURES / "handwritten_capture.txt"
    code, _out, _ = run_import(str(capture), date="2026-11-20")
    assert code == 0
    pairs = papers_in_capture(capture)
    assert Paper.objects.count() == len(pairs)
    assert set(Paper.objects.values_list("title", "abstract")) == set(pairs)
    assert set(Paper.objects.values_list("listed_on", flat=True)) == {date(2026, 11, 20)}


def test_new_counts_update_the_paper_and_record_a_snapshot(tmp_path: Path) -> None:
    first = tmp_path / "day.json"
    first.write_text(hf_json(hf_item(upvotes=10)))
    assert run_import(str(first))[0] == 0
    first.write_text(hf_json(hf_item(upvotes=25, comments=7)))

    code, out, _ = run_import(str(first))

    assert code == 0 and out.startswith("0 new, 1 updated")
    paper = Paper.objects.get()
    assert (paper.upvotes, paper.comments) == (25, 7)
    assert list(PaperSnapshot.objects.values_list("upvotes", flat=True)) == [10, 25]


def test_the_same_json_twice_changes_nothing(tmp_path: Path) -> None:
    payload = tmp_path / "day.json"
    payload.write_text(hf_json(hf_item(), hf_item(arxiv_id="2503.00001", title="Another")))
    run_import(str(payload))
    _code, out, _ = run_import(str(payload))
    assert out.startswith("0 new, 0 updated, 2 unchanged")
    assert PaperSnapshot.objects.count() == 2


def test_versions_of_one_paper_are_held_once(tmp_path: Path) -> None:
    payload = tmp_path / "v.json"
    payload.write_text(hf_json(hf_item(arxiv_id="2503.12345v1"), hf_item(arxiv_id="2503.12345v2")))
    run_import(str(payload))
    assert list(Paper.objects.values_list("arxiv_id", flat=True)) == ["2503.12345"]


def test_a_paper_known_by_title_gains_its_id_from_a_richer_source(tmp_path: Path) -> None:
    title, abstract = papers_in_capture(SEEDS[0])[0]
    run_import(str(SEEDS[0]))
    payload = tmp_path / "day.json"
    payload.write_text(hf_json(hf_item(arxiv_id="2403.09999", title=title.upper(), summary="")))

    run_import(str(payload))

    paper = Paper.objects.get(title_key=title_key(title))
    assert paper.arxiv_id == "2403.09999"
    assert paper.abstract == abstract  # an empty abstract never erases a known one
    assert Paper.objects.filter(title_key=title_key(title)).count() == 1


def test_bad_items_are_reported_and_the_rest_still_import(tmp_path: Path) -> None:
    payload = tmp_path / "day.json"
    broken = hf_item(arxiv_id="2503.00002", title="")
    broken["paper"]["title"] = None
    payload.write_text(hf_json(hf_item(), broken))

    code, out, err = run_import(str(payload), str(tmp_path / "missing.json"))

    assert code == 1
    assert Paper.objects.count() == 1
    assert "1 new" in out and "1 invalid" in out and "1 sources failed" in out
    assert "day.json item 2" in err
    assert "missing.json: no such file" in err


def test_a_garbled_source_fails_alone(tmp_path: Path) -> None:
    garbled = tmp_path / "garbled.json"
    garbled.write_text('[{"paper": {"id": "2503.1')
    good = tmp_path / "good.json"
    good.write_text(hf_json(hf_item()))

    code, _out, err = run_import(str(garbled), str(good), format="hf-json")

    assert code == 1
    assert Paper.objects.count() == 1
    assert "garbled.json" in err


def test_a_bad_date_option_is_a_clear_error() -> None:
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a date"):
        call_command("import_papers", str(SEEDS[0]), date="14/03/2026")


def test_it_imports_from_an_url_retrying_server_errors() -> None:
    body = hf_json(hf_item())

    def flaky(path: str, nth: int) -> tuple[int, str, str]:
        return (503, "text/plain", "busy") if nth < 3 else (200, "application/json", body)

    with http_server(flaky) as base:
        code, out, _ = run_import(f"{base}/api/daily_papers?date=2026-11-20")

    assert code == 0 and out.startswith("1 new")


def test_an_url_that_keeps_failing_is_reported_after_its_retries(settings) -> None:  # type: ignore[no-untyped-def]
    settings.PAPERS_FETCH_RETRIES = 2
    with http_server(lambda path, nth: (502, "text/plain", "bad gateway")) as base:
        code, _, err = run_import(f"{base}/papers")
    assert code == 1
    assert "HTTP 502 after 3 tries" in err


def test_a_client_error_is_not_retried() -> None:
    with http_server(lambda path, nth: (404, "text/plain", f"not found {nth}")) as base:
        summary = import_sources([f"{base}/nope"])
    assert summary.failed == [f"{base}/nope: HTTP 404"]


def test_the_format_is_detected_from_the_content() -> None:
    body = hf_json(hf_item())
    with http_server(lambda path, nth: (200, "text/plain", body)) as base:
        summary = import_sources([f"{base}/whatever"])
    assert summary.new == 1
    assert Paper.objects.get().source == "hf-json"
