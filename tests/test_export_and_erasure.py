import json
from pathlib import Path

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from newsletter import emails
from newsletter.digests import claim_due_subscribers, compose_chunk, send_queued
from newsletter.forms import clean_library
from newsletter.models import Click, ConsentRecord, DeliveryEvent, Digest, Feedback
from newsletter.subscriptions import set_library
from papers.models import Paper, Topic
from tests.factories import active_subscriber, add_profile

pytestmark = pytest.mark.django_db
EMAIL, IP, AGENT = "ada@example.org", "203.0.113.9", "Mozilla/5.0 (Ada's laptop)"
LIBRARY = Path(__file__).parent / "fixtures" / "library" / "zotero.bib"


@pytest.fixture
def reader():  # type: ignore[no-untyped-def]
    Paper.objects.create(
        title="Graph neural networks at scale",
        title_key="gnn",
        abstract="Graph neural networks.",
        listed_on=timezone.now().date(),
        source="text",
        arxiv_id="2511.00001",
    )
    Paper.objects.create(
        title="Message passing explained", title_key="mpe", source="text", arxiv_id="2401.00002"
    )
    reader = active_subscriber(
        EMAIL,
        ["graph neural networks"],
        about="Message passing on large graphs.",
        excluded_keywords=["medical"],
        liked=["https://arxiv.org/abs/2401.00002v1", "2512.99999"],
        authors=["Ada Lovelace"],
        topics=Topic.objects.filter(slug="graph-neural-networks"),
    )
    reading = add_profile(reader, name="Reading group", authors=["Eric Zelikman"])
    upload = clean_library(SimpleUploadedFile("my library.bib", LIBRARY.read_bytes()))
    assert upload is not None
    set_library(reading, upload)
    ConsentRecord.objects.create(
        subscriber=reader, kind="signup", ip=IP, user_agent=AGENT, consent_version="v1"
    )
    send_queued(compose_chunk(claim_due_subscribers(timezone.now(), 10)))
    digest, paper = Digest.objects.get(), Paper.objects.get(arxiv_id="2511.00001")
    DeliveryEvent.objects.create(
        provider="Postmark",
        event_type="delivered",
        event_key="e1",
        recipient=EMAIL,
        digest=digest,
        mta_response=f"250 OK <{EMAIL}>",
        at=timezone.now(),
    )
    Click.objects.create(digest=digest, subscriber=reader, paper=paper, url=paper.abs_url)
    Feedback.objects.create(digest=digest, subscriber=reader, paper=paper, value=1)
    return reader


def test_the_export_holds_everything_about_the_subscriber(client: Client, reader) -> None:  # type: ignore[no-untyped-def]
    response = client.get(
        emails.manage_url(reader).removeprefix("http://localhost:8000") + "export/"
    )

    assert response["Content-Disposition"].startswith("attachment")
    data = json.loads(response.content)
    assert data["email"] == EMAIL and data["status"] == "active"
    assert (
        data["profiles"]
        == [
            {
                "name": "My interests",
                "what_you_work_on": "Message passing on large graphs.",
                "topics": ["Graph neural networks"],
                "keywords": ["graph neural networks"],
                "excluded_keywords": ["medical"],
                "liked_papers": [
                    {
                        "as_given": "https://arxiv.org/abs/2401.00002v1",
                        "arxiv_id": "2401.00002",
                        "title": "Message passing explained",
                        "from_uploaded_library": False,
                    },
                    {
                        "as_given": "2512.99999",
                        "arxiv_id": "2512.99999",
                        "title": None,
                        "from_uploaded_library": False,
                    },
                ],
                "disliked_papers": [],
                "followed_authors": ["Ada Lovelace"],
                "trending_weight": 0.2,
                "uploaded_library": None,
            },
            {
                "name": "Reading group",
                "what_you_work_on": "",
                "topics": [],
                "keywords": [],
                "excluded_keywords": [],
                "liked_papers": [
                    {
                        "as_given": f"arXiv:{arxiv_id}",
                        "arxiv_id": arxiv_id,
                        "title": None,
                        "from_uploaded_library": True,
                    }
                    for arxiv_id in ("2403.09629", "1706.03762", "2203.14465")  # newest first
                ],
                "disliked_papers": [],
                "followed_authors": ["Eric Zelikman"],
                "trending_weight": 0.2,
                "uploaded_library": {
                    "file": "my library.bib",
                    "uploaded_at": data["profiles"][1]["uploaded_library"]["uploaded_at"],
                    "references": [
                        {
                            "title": "Attention Is All You Need",
                            "authors": [
                                "Ashish Vaswani",
                                "Noam Shazeer",
                                "Niki Parmar",
                                "Jakob Uszkoreit",
                                "Llion Jones",
                                "Aidan N. Gomez",
                                "Lukasz Kaiser",
                                "Illia Polosukhin",
                            ],
                            "year": "2023",
                            "arxiv_id": "1706.03762",
                            "doi": "10.48550/arXiv.1706.03762",
                        },
                        *data["profiles"][1]["uploaded_library"]["references"][1:],
                    ],
                },
            },
        ]
    )
    assert len(data["profiles"][1]["uploaded_library"]["references"]) == 4
    assert data["schedule"]["timezone"] == "UTC"
    assert [(c["kind"], c["ip"], c["user_agent"]) for c in data["consent_records"]] == [
        ("signup", IP, AGENT)
    ]
    assert data["digests"][0]["status"] == "sent"
    assert data["digests"][0]["papers"][0]["title"] == "Graph neural networks at scale"
    assert [(e["provider"], e["type"]) for e in data["delivery_events"]] == [
        ("Postmark", "delivered")
    ]
    assert data["clicks"][0]["url"] == "https://arxiv.org/abs/2511.00001"
    assert data["feedback"][0]["vote"] == "more like this"


def test_erasure_leaves_no_personal_data_in_any_table(client: Client, reader) -> None:  # type: ignore[no-untyped-def]
    url = emails.manage_url(reader).removeprefix("http://localhost:8000") + "delete/"
    assert client.get(url).status_code == 200  # asks first
    assert client.post(url).status_code == 200

    for model in apps.get_models():
        for row in model._default_manager.all().values():
            text = json.dumps(row, default=str)
            assert EMAIL not in text and IP not in text and AGENT not in text, model
            # The profiles went, and with them the uploaded library and the authors followed.
            for personal in ("Reading group", "Zelikman", "AlphaFold", "my library.bib"):
                assert personal not in text, model
    digest = Digest.objects.get()  # the anonymous count remains
    assert digest.subscriber is None and digest.status == "sent"
    assert DeliveryEvent.objects.get().event_type == "delivered"  # counted, anonymously
    assert not Click.objects.exists() and not Feedback.objects.exists()
    assert client.get(url).status_code == 404  # the link is dead now
