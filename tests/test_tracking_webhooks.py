"""Provider events posted to the real anymail endpoints, with realistic payloads of Postmark,
Mailgun and Amazon SES (through SNS) and each provider's own documented samples, and their
effect on the subscriber and queued mail."""

import base64
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from config.celery import app as celery_app
from newsletter import subscriptions
from newsletter.models import DeliveryEvent, Digest, Subscriber
from papers.models import Paper
from tests.factories import active_subscriber

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = "hook:s3cret"
MAILGUN_KEY = "mailgun-signing-key"
READER = "ada@example.org"
MESSAGE_ID = "0100019a-digest-message-id"
NOW = "2026-11-23T10:00:00Z"
CONFIRMED = datetime(2026, 11, 1, tzinfo=UTC)

Post = Callable[..., Any]


@pytest.fixture(autouse=True)
def webhook_settings(settings):  # type: ignore[no-untyped-def]
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": ["old:rotated-out", CREDENTIALS],
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }
    settings.NEWSLETTER_SOFT_BOUNCE_LIMIT = 2
    # The task after storing runs in this process; the worker path is in test_digest_delivery.
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def digests():  # type: ignore[no-untyped-def]
    """A digest sent to the reader, and the next one already queued."""
    # Confirmed before the events below are dated (NOW), or they would not count.
    reader = active_subscriber(READER, ["graph neural networks"], confirmed_at=CONFIRMED)
    paper = Paper.objects.create(title="GNNs", title_key="gnns", source="hf-json")
    sent = Digest.objects.create(
        subscriber=reader,
        period="2026-11-22",
        status=Digest.Status.SENT,
        sent_at=timezone.now(),
        message_id=f"<{MESSAGE_ID}>",
    )
    queued = Digest.objects.create(subscriber=reader, period="2026-11-23")
    queued.items.create(paper=paper, rank=1, score=1, reason="test")
    return sent, queued


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):  # type: ignore[no-untyped-def]
    def post(esp: str, body: bytes | str, auth: str = CREDENTIALS, **headers: str) -> Any:
        if auth:
            headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/anymail/{esp}/tracking/",
                data=body,
                content_type="application/json",
                **headers,
            )

    return post


# --- Realistic payloads -------------------------------------------------------------------------


def postmark(kind: str, message_id: str = MESSAGE_ID) -> tuple[str, str, dict[str, str]]:
    base: dict[str, Any] = {
        "MessageStream": "outbound",
        "MessageID": message_id,
        "Metadata": {"digest_id": "0"},
        "Tag": "",
        "ServerID": 23,
    }
    bounce = {
        "RecordType": "Bounce",
        "ID": abs(hash((kind, message_id))) % 10**12,
        "Email": READER,
        "From": "digest@paperboy.example",
        "BouncedAt": NOW,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "10 papers for you",
    }
    events: dict[str, dict[str, Any]] = {
        "delivered": {
            "RecordType": "Delivery",
            "Recipient": READER,
            "DeliveredAt": NOW,
            "Details": "smtp;250 2.0.0 OK",
        },
        "hard bounce": bounce
        | {
            "Type": "HardBounce",
            "TypeCode": 1,
            "Name": "Hard bounce",
            "Description": "The server was unable to deliver your message (unknown user).",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        },
        "soft bounce": bounce
        | {
            "Type": "SoftBounce",
            "TypeCode": 4096,
            "Name": "Soft bounce",
            "Description": "The server could not temporarily deliver your message.",
            "Details": "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
        },
        "complaint": bounce
        | {
            "RecordType": "SpamComplaint",
            "Type": "SpamComplaint",
            "TypeCode": 512,
            "Name": "Spam complaint",
            "Description": "The subscriber explicitly marked this message as spam.",
            "Details": "Test spam complaint details",
        },
        "unsubscribe": {
            "RecordType": "SubscriptionChange",
            "Recipient": READER,
            "ChangedAt": NOW,
            "Origin": "Recipient",
            "SuppressSending": True,
            "SuppressionReason": "ManualSuppression",
        },
        "open": {
            "RecordType": "Open",
            "Recipient": READER,
            "ReceivedAt": NOW,
            "FirstOpen": True,
            "Platform": "WebMail",
            "ReadSeconds": 5,
            "UserAgent": "Mozilla/5.0",
        },
        "click": {
            "RecordType": "Click",
            "Recipient": READER,
            "ReceivedAt": NOW,
            "ClickLocation": "HTML",
            "OriginalLink": "https://arxiv.org/abs/2511.00001",
            "Platform": "Desktop",
            "UserAgent": "Mozilla/5.0",
        },
    }
    return "postmark", json.dumps(base | events[kind]), {}


def mailgun(kind: str, message_id: str = MESSAGE_ID) -> tuple[str, str, dict[str, str]]:
    events: dict[str, dict[str, Any]] = {
        "delivered": {
            "event": "delivered",
            "log-level": "info",
            "delivery-status": {"code": 250, "message": "OK", "attempt-no": 1},
        },
        "hard bounce": {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "log-level": "error",
            "delivery-status": {
                "code": 550,
                "message": "5.1.1 The email account that you tried to reach does not exist",
                "attempt-no": 1,
            },
        },
        "soft bounce": {
            "event": "failed",
            "severity": "temporary",
            "reason": "generic",
            "log-level": "warn",
            "delivery-status": {"code": 452, "message": "4.2.2 Mailbox full", "attempt-no": 1},
        },
        "complaint": {"event": "complained", "log-level": "warn"},
        "unsubscribe": {"event": "unsubscribed", "log-level": "info"},
        "open": {"event": "opened", "log-level": "info"},
        "click": {"event": "clicked", "log-level": "info", "url": "https://arxiv.org/abs/1"},
    }
    timestamp, token = "1795427000", uuid.uuid4().hex
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    body = {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": {
            "id": uuid.uuid4().hex[:22],
            "timestamp": 1795427000.5,
            "recipient": READER,
            "message": {"headers": {"message-id": message_id, "to": READER}},
            "user-variables": {"digest_id": "0"},
            "tags": [],
        }
        | events[kind],
    }
    return "mailgun", json.dumps(body), {}


def ses(kind: str, message_id: str = MESSAGE_ID) -> tuple[str, str, dict[str, str]]:
    mail = {
        "timestamp": NOW,
        "source": "digest@paperboy.example",
        "messageId": message_id,
        "destination": [READER],
        "headersTruncated": False,
        "commonHeaders": {"to": [READER], "subject": "10 papers for you"},
        "tags": {},
    }
    bounce = {"bouncedRecipients": [{"emailAddress": READER}], "timestamp": NOW}
    events: dict[str, dict[str, Any]] = {
        "delivered": {
            "eventType": "Delivery",
            "delivery": {"timestamp": NOW, "recipients": [READER], "smtpResponse": "250 ok"},
        },
        "hard bounce": {
            "eventType": "Bounce",
            "bounce": bounce
            | {
                "bounceType": "Permanent",
                "bounceSubType": "General",
                "bouncedRecipients": [
                    {"emailAddress": READER, "diagnosticCode": "smtp; 550 5.1.1 user unknown"}
                ],
            },
        },
        "soft bounce": {
            "eventType": "Bounce",
            "bounce": bounce | {"bounceType": "Transient", "bounceSubType": "MailboxFull"},
        },
        "complaint": {
            "eventType": "Complaint",
            "complaint": {
                "complainedRecipients": [{"emailAddress": READER}],
                "timestamp": NOW,
                "complaintFeedbackType": "abuse",
            },
        },
        "open": {
            "eventType": "Open",
            "open": {"timestamp": NOW, "ipAddress": "192.0.2.1", "userAgent": "Mozilla/5.0"},
        },
        "click": {
            "eventType": "Click",
            "click": {
                "timestamp": NOW,
                "ipAddress": "192.0.2.1",
                "userAgent": "Mozilla/5.0",
                "link": "https://arxiv.org/abs/2511.00001",
            },
        },
    }
    sns_id = str(uuid.uuid4())
    notification = {
        "Type": "Notification",
        "MessageId": sns_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:paperboy-ses-events",
        "Message": json.dumps({"mail": mail} | events[kind]),
        "Timestamp": NOW,
        "SignatureVersion": "1",
        "Signature": "EXAMPLE",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification", "HTTP_X_AMZ_SNS_MESSAGE_ID": sns_id}
    return "amazon_ses", json.dumps(notification), headers


PROVIDERS = {"postmark": postmark, "mailgun": mailgun, "ses": ses}

# kind -> (stored anymail event type, subscriber status afterwards, queued digest afterwards)
EFFECTS = {
    "delivered": ("delivered", "active", "queued"),
    "hard bounce": ("bounced", "bounced", "cancelled"),
    "complaint": ("complained", "complained", "cancelled"),
    "unsubscribe": ("unsubscribed", "unsubscribed", "cancelled"),
    "open": ("opened", "active", "queued"),  # opens never suppress anyone
    "click": ("clicked", "active", "queued"),
}
CASES = [
    (provider, kind)
    for provider in PROVIDERS
    for kind in EFFECTS
    if not (provider == "ses" and kind == "unsubscribe")  # SES reports no unsubscribes
]


@pytest.mark.parametrize(("provider", "kind"), CASES)
def test_each_provider_event_is_stored_and_has_its_effect(post, digests, provider, kind) -> None:  # type: ignore[no-untyped-def]
    sent, queued = digests
    esp, body, headers = PROVIDERS[provider](kind)

    response = post(esp, body, **headers)

    assert response.status_code == 200, response.content
    event = DeliveryEvent.objects.get()
    stored_type, status, queued_status = EFFECTS[kind]
    assert (event.event_type, event.recipient, event.digest) == (stored_type, READER, sent)
    assert event.processed_at is not None
    assert Subscriber.objects.get().status == status
    queued.refresh_from_db()
    assert queued.status == queued_status


@pytest.mark.parametrize("provider", PROVIDERS)
def test_soft_bounces_stop_mail_only_after_the_limit_in_a_row(post, digests, provider) -> None:  # type: ignore[no-untyped-def]
    sent, queued = digests
    esp, body, headers = PROVIDERS[provider]("soft bounce")
    assert post(esp, body, **headers).status_code == 200
    assert DeliveryEvent.objects.get().soft
    assert Subscriber.objects.get().status == "active"  # one soft bounce is not enough

    # A delivery in between starts the count again.
    esp, body, headers = PROVIDERS[provider]("delivered")
    assert post(esp, body, **headers).status_code == 200
    second = Digest.objects.create(
        subscriber=sent.subscriber, period="2026-11-21", status="sent", message_id="second"
    )
    esp, body, headers = PROVIDERS[provider]("soft bounce", message_id="second")
    assert post(esp, body, **headers).status_code == 200
    assert Subscriber.objects.get().status == "active"

    third = Digest.objects.create(
        subscriber=sent.subscriber, period="2026-11-20", status="sent", message_id="third"
    )
    esp, body, headers = PROVIDERS[provider]("soft bounce", message_id=third.message_id)
    assert post(esp, body, **headers).status_code == 200
    assert Subscriber.objects.get().status == "bounced"  # two digests in a row
    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert second.events.count() == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("auth", ["", "hook:wrong", "nobody:s3cret"])
def test_wrong_or_missing_credentials_are_refused(post, digests, provider, auth) -> None:  # type: ignore[no-untyped-def]
    esp, body, headers = PROVIDERS[provider]("hard bounce")
    response = post(esp, body, auth=auth, **headers)
    assert 400 <= response.status_code < 500
    assert not DeliveryEvent.objects.exists()
    assert Subscriber.objects.get().status == "active"


def test_a_rotated_credential_still_works(post, digests) -> None:  # type: ignore[no-untyped-def]
    esp, body, headers = postmark("hard bounce")
    assert post(esp, body, auth="old:rotated-out", **headers).status_code == 200


def test_a_bad_mailgun_signature_is_refused(post, digests) -> None:  # type: ignore[no-untyped-def]
    esp, body, _ = mailgun("hard bounce")
    forged = json.loads(body)
    forged["signature"]["signature"] = "0" * 64
    assert post(esp, json.dumps(forged)).status_code == 400
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize(
    ("provider", "body"),
    [
        ("postmark", "{not json"),
        ("postmark", "[]"),
        ("postmark", json.dumps({"RecordType": "Bounce"})),
        ("mailgun", "{not json"),
        ("amazon_ses", "{not json"),
    ],
)
def test_a_malformed_body_gets_a_4xx_and_stores_nothing(post, digests, provider, body) -> None:  # type: ignore[no-untyped-def]
    headers = {}
    if provider == "amazon_ses":
        headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification"}
    response = post(provider, body, **headers)
    assert 400 <= response.status_code < 500
    assert not DeliveryEvent.objects.exists()


def test_a_malformed_ses_message_inside_a_valid_notification_stores_nothing(post, digests) -> None:  # type: ignore[no-untyped-def]
    esp, body, headers = ses("hard bounce")
    notification = json.loads(body)
    notification["Message"] = "{truncated"
    response = post(esp, json.dumps(notification), **headers)
    assert 400 <= response.status_code < 500
    assert not DeliveryEvent.objects.exists()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_same_event_twice_is_stored_once(post, digests, provider) -> None:  # type: ignore[no-untyped-def]
    esp, body, headers = PROVIDERS[provider]("complaint")
    assert post(esp, body, **headers).status_code == 200
    assert post(esp, body, **headers).status_code == 200
    assert DeliveryEvent.objects.count() == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind", ["hard bounce", "complaint"])
def test_an_event_about_a_digest_sent_before_the_reader_resubscribed_changes_nothing(
    post, digests, provider, kind
) -> None:  # type: ignore[no-untyped-def]
    # The digest went out, the reader unsubscribed and came back the next day; the provider's
    # report on that earlier digest (dated NOW) arrives only now.
    reader = Subscriber.objects.get()
    with time_machine.travel(datetime(2026, 11, 24, tzinfo=UTC)):
        subscriptions.unsubscribe(reader)
        assert subscriptions.resubscribe(reader, "192.0.2.1", "Mozilla/5.0")
    esp, body, headers = PROVIDERS[provider](kind)

    assert post(esp, body, **headers).status_code == 200
    assert DeliveryEvent.objects.get().digest == digests[0]
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE and reader.next_digest_at is not None


@pytest.mark.parametrize("provider", ["postmark", "mailgun"])  # SES reports no unsubscribes
def test_an_unsubscribe_from_a_message_not_ours_is_stored_and_ignored(
    post, digests, provider
) -> None:  # type: ignore[no-untyped-def]
    # The provider account's other streams and lists have unsubscribes of their own.
    esp, body, headers = PROVIDERS[provider]("unsubscribe", message_id="not-ours")
    raw = json.loads(body)
    raw.get("event-data", raw).pop("user-variables", None)
    raw.pop("Metadata", None)
    assert post(esp, json.dumps(raw), **headers).status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.digest is None and event.processed_at is not None
    assert Subscriber.objects.get().status == "active"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_bounce_of_an_address_no_reader_has_is_stored_and_ignored(
    post, digests, provider
) -> None:  # type: ignore[no-untyped-def]
    esp, body, headers = PROVIDERS[provider]("hard bounce", message_id="not-ours")
    body = body.replace(READER, "someone.else@example.org")
    assert post(esp, body, **headers).status_code == 200
    event = DeliveryEvent.objects.get()
    assert event.digest is None and event.processed_at is not None
    assert Subscriber.objects.get().status == "active"


# --- Each provider's own sample events, matched by address (issue 22) ---------------------------

SAMPLES = json.loads((ROOT / "tests/fixtures/provider_sample_events.json").read_text())["providers"]
# Confirmed before every sample is dated (the oldest, Mailgun's complaint, is of August 2013).
LONG_AGO = datetime(2010, 1, 1, tzinfo=UTC)
STOPS = {
    "hard bounce": "bounced",
    "complaint": "complained",
    "refused as invalid": "bounced",  # SendGrid dropped it: the address is invalid
}
NEVER_STOP = {
    "soft bounce",  # Brevo's soft_bounce, Mailgun's temporary failure
    "greylisted",  # Mailjet
    "delayed",  # SparkPost
    "rejected for its content",  # SES: the message was refused, not the address
    "delivered",
    "open",
    "click",
}
assert {kind for p in SAMPLES.values() for kind in p["events"]} == set(STOPS) | NEVER_STOP


def sample(provider: str, kind: str) -> tuple[str, str, dict[str, str]]:
    """The provider's sample ``kind`` of event as its webhook posts it: (esp, body, headers)."""
    payload = copy.deepcopy(SAMPLES[provider]["events"][kind]["payload"])
    headers: dict[str, str] = {}
    if provider == "mailgun":
        data = payload["event-data"]
        token, timestamp = "1234567890abcdef1234567890abcdef", str(int(data["timestamp"]))
        signed = hmac.new(MAILGUN_KEY.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
        payload["signature"] = {
            "timestamp": timestamp,
            "token": token,
            "signature": signed.hexdigest(),
        }
    if provider == "amazon_ses":
        payload["Message"] = json.dumps(payload["Message"]) + "\n"
        headers = {
            "HTTP_X_AMZ_SNS_MESSAGE_TYPE": payload["Type"],
            "HTTP_X_AMZ_SNS_MESSAGE_ID": payload["MessageId"],
        }
    return provider, json.dumps(payload), headers


def samples_of(kinds: set[str] | dict[str, str]) -> list[tuple[str, str]]:
    return [(p, kind) for p in SAMPLES for kind in SAMPLES[p]["events"] if kind in kinds]


def reader_named_by(provider: str, kind: str, confirmed_at: datetime = LONG_AGO) -> Subscriber:
    address = SAMPLES[provider]["events"][kind]["recipient"]
    # Created directly: Mailjet's sample names "invalid@invalid", which no form takes today.
    return Subscriber.objects.create(
        email=address,
        status=Subscriber.Status.ACTIVE,
        confirmed_at=confirmed_at,
        next_digest_at=timezone.now(),
    )


@pytest.mark.parametrize(("provider", "kind"), samples_of(STOPS))
def test_a_hard_bounce_or_complaint_naming_a_readers_address_stops_mail_whatever_the_message(
    post, provider, kind
) -> None:  # type: ignore[no-untyped-def]
    # Mail sent before a restore, a staff test send, an earlier deployment: no digest of ours
    # has the sample's message id, yet the address is the reader's.
    reader = reader_named_by(provider, kind)
    queued = Digest.objects.create(subscriber=reader, period="2026-11-23")

    response = post(*sample(provider, kind)[:2], **sample(provider, kind)[2])

    assert response.status_code == 200, response.content
    assert DeliveryEvent.objects.get().digest is None  # matched by address alone
    reader.refresh_from_db()
    assert (reader.status, reader.next_digest_at) == (STOPS[kind], None)
    queued.refresh_from_db()
    assert queued.status == Digest.Status.CANCELLED


# Brevo's complaint sample carries no ts_epoch: its date is when it arrives.
DATED = [case for case in samples_of(STOPS) if case != ("brevo", "complaint")]


@pytest.mark.parametrize(("provider", "kind"), DATED)
def test_an_event_dated_before_the_reader_confirmed_changes_nothing(post, provider, kind) -> None:  # type: ignore[no-untyped-def]
    # They bounced or complained years ago, then signed up and confirmed again: that old
    # event, delivered late (a provider's retry, a replayed log), must not stop them now.
    reader = reader_named_by(provider, kind, confirmed_at=timezone.now())
    esp, body, headers = sample(provider, kind)

    assert post(esp, body, **headers).status_code == 200
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE and reader.next_digest_at is not None
    assert DeliveryEvent.objects.get().processed_at is not None


@pytest.mark.parametrize(("provider", "kind"), samples_of(NEVER_STOP))
def test_deliveries_opens_clicks_and_temporary_failures_stop_no_one(post, provider, kind) -> None:  # type: ignore[no-untyped-def]
    reader = reader_named_by(provider, kind)
    esp, body, headers = sample(provider, kind)

    assert post(esp, body, **headers).status_code == 200
    assert DeliveryEvent.objects.exists()
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE and reader.next_digest_at is not None


@pytest.mark.parametrize(("provider", "kind"), [c for c in DATED if c[1] == "complaint"])
def test_a_complaint_dated_before_the_reader_resubscribed_changes_nothing(
    post, provider, kind
) -> None:  # type: ignore[no-untyped-def]
    # Confirmed long ago, unsubscribed, then resubscribed from their manage page today: a
    # complaint about mail of the earlier subscription, arriving late, is not about this one.
    reader = reader_named_by(provider, kind)
    subscriptions.unsubscribe(reader)
    assert subscriptions.resubscribe(reader, "192.0.2.1", "Mozilla/5.0")

    assert post(*sample(provider, kind)[:2], **sample(provider, kind)[2]).status_code == 200
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.ACTIVE and reader.next_digest_at is not None


@pytest.mark.parametrize(("provider", "kind"), [c for c in DATED if c[1] == "hard bounce"])
def test_a_bounce_dated_before_the_reader_signed_up_again_changes_nothing(
    post, provider, kind
) -> None:  # type: ignore[no-untyped-def]
    # Their address bounced once; they signed up again today and have yet to confirm. A late
    # copy of that old bounce must not stop the confirmation on its way.
    reader = reader_named_by(provider, kind)
    Subscriber.objects.filter(pk=reader.pk).stop_mail(Subscriber.Status.BOUNCED)
    subscriptions.signup({"email": reader.email}, "192.0.2.1", "Mozilla/5.0")

    assert post(*sample(provider, kind)[:2], **sample(provider, kind)[2]).status_code == 200
    reader.refresh_from_db()
    assert reader.status == Subscriber.Status.PENDING
