"""Fetching papers by arXiv id (a reader's liked paper that is not in the catalogue): the Daily
Papers single-paper API first, the arXiv API for the rest. Only the HTTP boundary is faked: a
real server on loopback answers with published captures (tests/fixtures/README.md)."""

import itertools
from datetime import date
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from papers.importing import fetch, fetch_papers
from papers.models import ImportRun, Paper
from papers.tasks import fetch_papers as fetch_papers_task
from tests.factories import Answer, Request, http_server
from tests.test_import_papers import run_import

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HF_PAPER = (FIXTURES / "hf_paper_2509.04664.json").read_text()
ARXIV_PAPER = (FIXTURES / "arxiv_api_1706.03762.xml").read_text()
ARXIV_NOTHING = (FIXTURES / "arxiv_api_unknown_id.xml").read_text()
NOT_FOUND = (404, "application/json", '{"error":"Paper not found"}')
pytestmark = pytest.mark.django_db


def ids_asked(request: Request) -> list[str]:
    return parse_qs(urlsplit(request.path).query)["id_list"][0].split(",")


@pytest.fixture
def sources(settings):  # type: ignore[no-untyped-def]
    """Daily Papers knows 2509.04664; arXiv knows 1706.03762; each test may override."""
    answers: dict[str, object] = {"hf": None, "arxiv": None}
    seen: list[Request] = []

    def respond(path: str, nth: int) -> Answer:
        if path.startswith("/api/papers/"):
            hf = answers["hf"]
            if callable(hf):
                return hf(path, nth)  # type: ignore[no-any-return]
            return (200, "application/json", HF_PAPER) if "2509.04664" in path else NOT_FOUND
        arxiv = answers["arxiv"]
        if callable(arxiv):
            return arxiv(path, nth)  # type: ignore[no-any-return]
        body = ARXIV_PAPER if "1706.03762" in path else ARXIV_NOTHING
        return (200, "application/atom+xml; charset=utf-8", body)

    with http_server(respond, seen) as base:
        settings.PAPERS_HF_PAPER_API_URL = f"{base}/api/papers"
        settings.PAPERS_ARXIV_API_URL = f"{base}/api/query"
        yield answers, seen


def test_a_paper_on_daily_papers_comes_from_its_single_paper_api(sources) -> None:  # type: ignore[no-untyped-def]
    _, seen = sources
    result = fetch_papers(["https://huggingface.co/papers/2509.04664"])

    paper = Paper.objects.get()
    assert (paper.arxiv_id, paper.title) == ("2509.04664", "Why Language Models Hallucinate")
    assert paper.upvotes == 26 and paper.listed_on == date(2025, 9, 8)
    assert paper.authors[0] == "Adam Tauman Kalai" and paper.source == "hf-json"
    assert result.new == 1 and result.found == ["2509.04664"]
    assert [r.path for r in seen] == ["/api/papers/2509.04664"]  # arXiv was not asked


def test_a_paper_hugging_face_lacks_comes_from_the_arxiv_api(sources) -> None:  # type: ignore[no-untyped-def]
    _, seen = sources
    result = fetch_papers(["arXiv:1706.03762v5"])

    paper = Paper.objects.get()
    assert paper.title == "Attention Is All You Need" and paper.source == "arxiv"
    assert paper.categories == ["cs.CL", "cs.LG"] and paper.listed_on is None
    assert result.new == 1 and result.ok
    assert ids_asked(seen[-1]) == ["1706.03762"]


def test_the_ids_left_for_arxiv_go_in_one_request(sources) -> None:  # type: ignore[no-untyped-def]
    _, seen = sources
    fetch_papers(["1706.03762", "2509.04664", "1201.56789"])

    arxiv_requests = [r for r in seen if r.path.startswith("/api/query")]
    assert len(arxiv_requests) == 1
    assert ids_asked(arxiv_requests[0]) == ["1706.03762", "1201.56789"]


def test_ids_already_held_cost_no_request_and_asking_twice_changes_nothing(sources) -> None:  # type: ignore[no-untyped-def]
    _, seen = sources
    first = fetch_papers(["2509.04664", "1706.03762"])
    requests_before, runs_before = len(seen), ImportRun.objects.count()

    second = fetch_papers(["2509.04664", "https://arxiv.org/abs/1706.03762"])

    assert first.new == 2 and (second.new, second.updated, second.unchanged) == (0, 0, 2)
    assert len(seen) == requests_before and ImportRun.objects.count() == runs_before
    assert Paper.objects.count() == 2


def test_an_id_nobody_knows_is_recorded_as_unknown(sources) -> None:  # type: ignore[no-untyped-def]
    result = fetch_papers(["1201.56789", "not a paper"])

    assert result.unknown == ["1201.56789"] and not result.pending
    run = ImportRun.objects.get()
    assert run.errors == [
        "'not a paper': not an arXiv id",
        "arXiv:1201.56789: neither Daily Papers nor arXiv knows this id",
    ]
    assert run.source == "paper-by-id" and run.failure == ""  # the sources themselves worked
    assert not Paper.objects.exists()


def test_when_daily_papers_is_down_arxiv_still_answers(sources, settings) -> None:  # type: ignore[no-untyped-def]
    answers, seen = sources
    settings.PAPERS_FETCH_RETRIES = 1
    answers["hf"] = lambda path, nth: (502, "text/html", "<html>Bad gateway</html>")

    result = fetch_papers(["1706.03762", "1201.56789"])

    assert result.new == 1 and result.unknown == ["1201.56789"]
    assert "Daily Papers API: HTTP 502 after 2 tries; asking arXiv instead" in result.warnings
    assert sum(r.path.startswith("/api/papers/") for r in seen) == 2  # gave up on it after one id


def test_a_failing_arxiv_leaves_the_ids_for_a_later_try_and_the_task_tries_again(
    sources, settings
) -> None:  # type: ignore[no-untyped-def]
    answers, seen = sources
    settings.PAPERS_FETCH_RETRIES = 0

    def busy_twice(path: str, nth: int) -> Answer:
        if sum(r.path.startswith("/api/query") for r in seen) <= 2:
            return (503, "text/plain", "busy")
        return (200, "application/atom+xml", ARXIV_PAPER)

    answers["arxiv"] = busy_twice
    failed = fetch_papers(["1706.03762"])
    assert failed.pending == ["1706.03762"] and not failed.unknown
    assert "arXiv API: HTTP 503 after 1 tries; 1 ids left for later" in failed.failed

    # The task's first try stores what Daily Papers has and meets a 503 again; it tries again
    # (at once here: eager tasks ignore the countdown) with only the ids left.
    fetch_papers_task.apply(args=[["1706.03762", "2509.04664"]]).get()

    assert Paper.objects.count() == 2
    arxiv_requests = [r for r in seen if r.path.startswith("/api/query")]
    assert [ids_asked(r) for r in arxiv_requests] == [["1706.03762"]] * 3


def test_a_long_retry_after_is_left_to_the_task(sources, settings) -> None:  # type: ignore[no-untyped-def]
    answers, seen = sources
    settings.PAPERS_FETCH_MAX_WAIT = 60
    answers["arxiv"] = lambda path, nth: (503, "text/plain", "busy", {"Retry-After": "600"})

    result = fetch_papers(["1706.03762"])

    assert result.pending == ["1706.03762"] and result.retry_after == 600
    assert "arXiv API: HTTP 503, asked to retry after 600 s; 1 ids left for later" in result.failed
    assert sum(r.path.startswith("/api/query") for r in seen) == 1  # no retry in the meantime


def test_a_short_retry_after_is_waited_out(settings) -> None:
    settings.PAPERS_FETCH_BACKOFF = 0
    seen: list[Request] = []

    def busy_first(path: str, nth: int) -> Answer:
        if nth == 1:
            return (503, "text/plain", "busy", {"Retry-After": "1"})
        return (200, "application/json", HF_PAPER)

    with http_server(busy_first, seen) as base:
        fetched = fetch(f"{base}/api/papers/2509.04664")

    assert "Why Language Models Hallucinate" in fetched.text
    assert seen[1].at - seen[0].at >= 1


def test_polite_requests_to_one_host_are_spaced_across_callers(settings) -> None:
    settings.PAPERS_POLITE_INTERVAL = 1
    seen: list[Request] = []
    with http_server(lambda path, nth: (200, "application/atom+xml", ARXIV_NOTHING), seen) as base:
        for _ in range(3):
            fetch(f"{base}/api/query?id_list=1201.56789", polite=True)

    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(seen)]
    assert len(gaps) == 2 and min(gaps) >= 0.9


def test_a_conditional_get_sends_the_validators_and_reads_not_modified() -> None:
    seen: list[Request] = []

    def respond(path: str, nth: int) -> Answer:
        if nth == 1:
            return (200, "application/rss+xml", "<rss/>", {"ETag": '"v1"'})
        return (304, "application/rss+xml", "")

    with http_server(respond, seen) as base:
        first = fetch(f"{base}/rss/cs.LG")
        second = fetch(f"{base}/rss/cs.LG", validators=first.validators)

    assert first.validators == {"etag": '"v1"'} and not first.not_modified
    assert second.not_modified and seen[1].headers["If-None-Match"] == '"v1"'


def test_the_single_paper_response_imports_with_format_auto() -> None:
    code, out, _ = run_import(str(FIXTURES / "hf_paper_2509.04664.json"))

    assert code == 0 and out.startswith("1 new")
    assert Paper.objects.get().ai_keywords[0] == "hallucinations"


def test_a_hugging_face_error_object_is_not_taken_for_a_paper(tmp_path: Path) -> None:
    source = tmp_path / "error.json"
    source.write_text('{"error": "Paper not found"}')
    code, _, err = run_import(str(source))
    assert code == 1 and "expected a list of papers, got Paper not found" in err
