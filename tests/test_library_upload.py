"""Cold start from a reference library: BibTeX and RIS exports (Zotero, Mendeley, Google
Scholar; see fixtures/library/README.md), uploaded at signup or on the manage page."""

from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from newsletter import emails
from newsletter.models import Library, ProfilePaper, Subscriber
from papers.library import LibraryError, find_arxiv_id, frequent_authors, read_library
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db
LIBRARIES = Path(__file__).parent / "fixtures" / "library"


def read(name: str) -> list[tuple[str, str]]:
    entries = read_library((LIBRARIES / name).read_bytes(), name)
    return [(e.arxiv_id, e.title) for e in entries]


def test_each_exporters_way_of_naming_the_arxiv_id_is_found() -> None:
    assert read("zotero.bib") == [
        ("1706.03762", "Attention Is All You Need"),  # DOI 10.48550/arXiv..., note, url
        ("2403.09629", "Quiet-STaR: Language Models Can Teach Themselves to Think Before Speaking"),
        ("2203.14465", "STaR: Bootstrapping Reasoning With Reasoning"),  # only the arXiv url
        ("", "Highly accurate protein structure prediction with AlphaFold"),  # a journal DOI
    ]
    assert [i for i, _ in read("mendeley.bib")] == ["1803.06373", "1412.6572", "0902.3619"]
    assert [i for i, _ in read("scholar.bib")] == ["", "2403.09629", "1511.07889"]
    assert [i for i, _ in read("zotero.ris")] == ["1706.03762", "2403.09629", ""]


def test_names_are_read_as_people_write_them() -> None:
    mendeley = read_library((LIBRARIES / "mendeley.bib").read_bytes(), "mendeley.bib")
    assert mendeley[2].authors[2] == "Jesús E. García"  # LaTeX accents decoded
    ris = read_library((LIBRARIES / "zotero.ris").read_bytes(), "zotero.ris")
    assert ris[1].authors == ("Eric Zelikman", "Georges Harik", "Noah D. Goodman")


def test_the_most_frequent_authors_are_offered() -> None:
    entries = read_library((LIBRARIES / "zotero.bib").read_bytes(), "zotero.bib")
    assert frequent_authors(entries) == ["Eric Zelikman", "Noah D. Goodman"]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("arXiv preprint arXiv:2401.12345", "2401.12345"),
        ("arXiv:hep-th/9901001 [hep-th]", "hep-th/9901001"),
        ("https://arxiv.org/pdf/2401.12345v2", "2401.12345"),
        ("10.48550/arXiv.2401.12345", "2401.12345"),
        ("10.1038/s41586-021-03819-2", ""),
        ("Proceedings of NeurIPS 2023", ""),
    ],
)
def test_an_arxiv_id_is_found_wherever_an_exporter_put_it(text: str, found: str) -> None:
    assert find_arxiv_id([text]) == found


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "We found no references"),
        (b"Dear colleague, here are my papers.", "We found no references"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
        (b"@article{a, title = {fine}}\n@misc{broken, title = {oops\n", "Line 2 of that file"),
        (b"x" * (2 * 1024 * 1024 + 1), "up to 2 MB"),
    ],
)
def test_a_bad_file_says_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(LibraryError, match=message):
        read_library(data, "library.bib")


def test_more_than_two_thousand_references_are_refused() -> None:
    many = "".join(f"@misc{{k{n}, title = {{Paper {n}}}}}\n" for n in range(2001))
    with pytest.raises(LibraryError, match="2,001 references; up to 2,000"):
        read_library(many.encode(), "big.bib")


def error_next_to(field_id: str, page: bytes) -> str:
    field = BeautifulSoup(page, "html.parser").find(id=field_id)
    assert field is not None and field.parent is not None
    errors = field.parent.find(class_="errorlist")
    return errors.get_text() if errors else ""


def signup_with(client: Client, upload: SimpleUploadedFile, **fields: str) -> object:
    data = {
        "email": "ada@example.org",
        "frequency": "daily",
        "weekday": "0",
        "send_hour": "8",
        "timezone": "UTC",
        "consent": "on",
        "library": upload,
        **fields,
    }
    return client.post("/", data)


def test_a_signup_with_only_a_library_likes_its_arxiv_papers_and_those_the_catalogue_knows(
    client: Client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    Paper.objects.create(
        title="Highly accurate protein structure prediction with AlphaFold",
        title_key="highly accurate protein structure prediction with alphafold",
        source="text",
    )
    quiet = Paper.objects.create(
        arxiv_id="2403.09629", title="Quiet-STaR", title_key="quiet-star", source="hf-json"
    )
    upload = SimpleUploadedFile("My Library.bib", (LIBRARIES / "zotero.bib").read_bytes())

    response = signup_with(client, upload)

    assert response.status_code == 200  # type: ignore[attr-defined]
    reader = Subscriber.objects.get()
    profile = reader.profiles.get()
    library = Library.objects.get(profile=profile)
    assert library.filename == "My Library.bib" and len(library.entries) == 4
    liked = {(p.arxiv_id, p.paper_id) for p in profile.papers.filter(opinion=ProfilePaper.LIKED)}
    alphafold = Paper.objects.get(arxiv_id=None).pk
    assert liked == {
        ("2403.09629", quiet.pk),
        ("1706.03762", None),  # fetched once the address is confirmed
        ("2203.14465", None),
        ("", alphafold),  # its title is in the catalogue
    }


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("notes.bib", b"nothing here", "We found no references"),
        ("huge.bib", b"%" * (2 * 1024 * 1024 + 10), "up to 2 MB"),
        ("broken.bib", b"@article{a, title = {x}}\n@article{b, title = {y", "not BibTeX we can"),
    ],
)
def test_a_bad_library_at_signup_is_refused_next_to_the_field_and_nothing_is_stored(
    client: Client, name: str, data: bytes, message: str
) -> None:
    response = signup_with(client, SimpleUploadedFile(name, data), keywords="diffusion")

    assert response.status_code == 400  # type: ignore[attr-defined]
    assert message in error_next_to("id_library", response.content)  # type: ignore[attr-defined]
    assert not Subscriber.objects.exists() and not Library.objects.exists()
    assert mail.outbox == []


def test_uploading_on_the_manage_page_replaces_the_library_and_offers_its_authors(
    client: Client, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["reasoning"], liked=["2401.00001"])
    url = emails.manage_url(reader)
    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if k not in ("topics", "liked")}
    data |= {"liked": "2401.00001", "action": "save"}

    with django_capture_on_commit_callbacks() as queued:
        data["library"] = SimpleUploadedFile(
            "mendeley.bib", (LIBRARIES / "mendeley.bib").read_bytes()
        )
        response = client.post(url, data, follow=True)
    assert "From your library: 3 references in mendeley.bib; 3 became liked papers" in (
        response.content.decode()
    )
    assert len(queued) == 1  # the missing papers are fetched in the background

    data["library"] = SimpleUploadedFile("zotero.bib", (LIBRARIES / "zotero.bib").read_bytes())
    response = client.post(url, data, follow=True)

    profile = reader.profiles.get()
    assert Library.objects.get(profile=profile).filename == "zotero.bib"  # replaced, not added
    refs = sorted(profile.papers.values_list("ref", flat=True))
    assert refs == ["2401.00001", "arXiv:1706.03762", "arXiv:2203.14465", "arXiv:2403.09629"]
    page = response.content.decode()
    assert "Follow authors from your library?" in page and "Eric Zelikman" in page
    # The typed papers stay the reader's own: the liked box shows only them.
    assert client.get(url).context["form"].initial["liked"] == "2401.00001"

    client.post(url, {"action": "follow_authors", "follow": ["Eric Zelikman", "Not Offered"]})
    profile.refresh_from_db()
    assert profile.authors == ["Eric Zelikman"]

    client.post(url, {"action": "remove_library"})
    assert list(profile.papers.values_list("ref", flat=True)) == ["2401.00001"]
    assert not Library.objects.exists()


def test_a_bad_library_on_the_manage_page_changes_nothing(client: Client) -> None:
    reader = active_subscriber("ada@example.org", ["reasoning"])
    url = emails.manage_url(reader)
    data = {k: v for k, v in client.get(url).context["form"].initial.items() if k != "topics"}
    data |= {
        "keywords": "something else",
        "action": "save",
        "library": SimpleUploadedFile("x.ris", b"TY  - JOUR\nTI  - no end record\n"),
    }

    response = client.post(url, data)

    assert response.status_code == 400
    assert "We found no references" in error_next_to("id_library", response.content)
    assert reader.profiles.get().keywords == ["reasoning"]  # nothing half-stored
