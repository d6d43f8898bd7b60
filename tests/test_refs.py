"""REFs: every way a reader names a paper parses to one canonical arXiv id or a title, and
every mistake gets a message that names it."""

import pytest

from papers.models import Paper
from papers.refs import Ref, RefError, parse_ref, split_refs


@pytest.mark.parametrize(
    ("given", "arxiv_id"),
    [
        ("2401.12345", "2401.12345"),
        ("2401.12345v3", "2401.12345"),
        ("arXiv:2401.12345v1", "2401.12345"),
        ("0704.0001", "0704.0001"),  # the first new-style id (four digits until 2014)
        ("1412.6980", "1412.6980"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("math.GT/0309136v2", "math.gt/0309136"),
        ("cond-mat/0101001", "cond-mat/0101001"),
        ("https://arxiv.org/abs/2401.12345v2", "2401.12345"),
        ("http://www.arxiv.org/pdf/2401.12345v2.pdf", "2401.12345"),
        ("https://arxiv.org/pdf/2401.12345", "2401.12345"),
        ("arxiv.org/abs/hep-th/9901001", "hep-th/9901001"),
        ("https://export.arxiv.org/abs/2401.12345", "2401.12345"),
        ("https://arxiv.org/html/2401.12345v1", "2401.12345"),
        ("https://huggingface.co/papers/2401.12345", "2401.12345"),
        ("https://www.alphaxiv.org/abs/2401.12345", "2401.12345"),
        ("https://www.alphaxiv.org/overview/2401.12345v2", "2401.12345"),
        ("10.48550/arXiv.2401.12345", "2401.12345"),
        ("doi:10.48550/ARXIV.2401.12345", "2401.12345"),
        ("https://doi.org/10.48550/arXiv.2401.12345", "2401.12345"),
        ("  2401.12345 \n", "2401.12345"),
    ],
)
def test_ids_links_and_dois_name_the_same_canonical_id(given: str, arxiv_id: str) -> None:
    assert parse_ref(given) == Ref(" ".join(given.split()), arxiv_id=arxiv_id)


def test_anything_else_is_taken_for_a_title() -> None:
    ref = parse_ref("Attention Is All You  Need")
    assert ref.title == "Attention Is All You Need" and not ref.arxiv_id


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("2401.123", "not a valid arXiv id"),
        ("2413.12345", "not a valid arXiv id"),  # no 13th month
        ("1501.1234", "not a valid arXiv id"),  # five digits since 2015
        ("2401.12345v", "not a valid arXiv id"),
        ("hep-th/99", "not a valid arXiv id"),
        ("https://example.com/abs/2401.12345", "links to example.com"),
        ("https://arxiv.org.evil.test/abs/2401.12345", "links to arxiv.org.evil.test"),
        ("https://arxiv.org/list/cs.LG/recent", "not a link to a paper on arxiv.org"),
        ("https://huggingface.co/models/2401.12345", "not a link to a paper"),
        ("10.1145/3292500.3330701", "not an arXiv DOI"),
        ("10.48550/arXiv.2401", "not a valid arXiv DOI"),
        ("https://doi.org/10.1145/3292500", "not an arXiv DOI link"),
        ("a title\x00with a NUL", "control characters"),
        ("x" * 501, "too long for a title"),
    ],
)
def test_a_mistake_gets_a_message_that_names_it(given: str, message: str) -> None:
    with pytest.raises(RefError, match=message) as raised:
        parse_ref(given)
    assert given[:20].replace("\x00", "") in str(raised.value).replace("\x00", "") or (
        "control" in message
    )


def test_a_box_takes_ids_on_one_line_and_titles_on_their_own() -> None:
    typed = (
        "2401.12345, https://huggingface.co/papers/2402.00001 arXiv:2403.00002\n"
        "Scaling Laws for Neural Language Models, Revisited\n"
        "\n"
        "2401.12345\n"
    )
    assert split_refs(typed) == [
        "2401.12345",
        "https://huggingface.co/papers/2402.00001",
        "arXiv:2403.00002",
        "Scaling Laws for Neural Language Models, Revisited",
    ]


def test_a_mistyped_id_among_ids_stays_an_id_to_complain_about() -> None:
    assert split_refs("2401.12345, 2401.123") == ["2401.12345", "2401.123"]


@pytest.mark.django_db
def test_the_catalogue_finds_papers_by_id_and_by_exact_title() -> None:
    with_id = Paper.objects.create(
        arxiv_id="2401.12345", title="Tiny Networks", title_key="tiny networks", source="text"
    )
    capture = Paper.objects.create(
        title="Attention Is All You Need", title_key="attention is all you need", source="text"
    )
    refs = [
        parse_ref("https://arxiv.org/abs/2401.12345v2"),
        parse_ref("attention is all you need!"),
        parse_ref("2401.99999"),
        parse_ref("A Paper Nobody Wrote"),
    ]
    assert Paper.objects.for_refs(refs) == {refs[0]: with_id, refs[1]: capture}
