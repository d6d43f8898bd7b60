"""Staff screens open for every model, with data in them."""

import pytest
from django.urls import reverse
from django.utils import timezone

from newsletter.models import Click, DeliveryEvent, Digest, Feedback
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db


def test_every_admin_list_and_detail_page_opens(admin_client) -> None:  # type: ignore[no-untyped-def]
    reader = active_subscriber("ada@example.org", ["graphs"])
    paper = Paper.objects.create(title="GNNs", title_key="gnns", source="hf-json")
    digest = Digest.objects.create(subscriber=reader, period="2026-11-23", status="sent")
    digest.items.create(paper=paper, rank=1, score=0.5, reason="matches your keyword 'graphs'")
    rows = [
        reader,
        paper,
        digest,
        DeliveryEvent.objects.create(
            provider="Postmark",
            event_type="bounced",
            event_key="k",
            digest=digest,
            at=timezone.now(),
        ),
        Click.objects.create(digest=digest, subscriber=reader, paper=paper, url="https://x.org"),
        Feedback.objects.create(subscriber=reader, paper=paper, digest=digest, value=-1),
    ]
    for row in rows:
        meta = row._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert admin_client.get(changelist).status_code == 200, changelist
        change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
        assert admin_client.get(change).status_code == 200, change
