"""Hostile and broken input (issue 8): whatever arrives at the signup form, a signed link, a
paper parser or a provider webhook, the answer is never a 500 or an escaping exception, and
nothing half-written or unusable (a partial row, an address that is not one address) is kept.
"""

import base64
import contextlib
import html
import json
import string
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.urls import Resolver404, get_resolver, resolve
from django.urls.converters import IntConverter
from django.utils import timezone
from hypothesis import HealthCheck, event, example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from newsletter import emails, tracking
from newsletter.forms import SignupForm
from newsletter.models import DeliveryEvent, Digest, Subscriber
from papers.importing import PARSERS, import_sources
from papers.models import Paper, Topic
from papers.sources import Parsed, SourceError
from tests.conftest import examples as scaled
from tests.factories import active_subscriber, hf_item
from tests.test_tracking_webhooks import (
    CREDENTIALS,
    MAILGUN_KEY,
    MESSAGE_ID,
    PROVIDERS,
    READER,
)

# `make fuzz` runs them all; emails queued by a signup are built and sent here, at once.
pytestmark = [pytest.mark.django_db, pytest.mark.hypothesis, pytest.mark.usefixtures("eager_tasks")]

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = [
    ROOT / "tests" / "fixtures" / "handwritten_capture.txt",
    *sorted((ROOT / "papers" / "seeds").glob("*.txt")),
]
FIXTURE_TEXT = {path.name: path.read_text(encoding="utf-8") for path in CAPTURES}


# Fixture-scoped data (client, settings, db) is reused by every example of a test, so each
# example runs in its own rolled-back transaction and clears the rate-limit counters itself.
def examples(count: int) -> hypothesis_settings:
    return hypothesis_settings(
        max_examples=scaled(count),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )


@contextlib.contextmanager
def rolled_back() -> Iterator[None]:
    """Run one example and undo its rows, so examples neither see nor hide each other's."""
    cache.clear()
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


# Strings that have broken parsers and databases before: NUL (PostgreSQL refuses it), a lone
# surrogate (no UTF-8 for it), timestamps outside what a database stores in UTC, long ids.
NASTY_STRINGS = [
    "",
    "\x00",
    "A title\x00with a NUL",
    "\ud800 lone surrogate",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "2026-11-20T25:00:00Z",
    "a" * 40 + "/1234567",
    "abcdefghijklmnopqrstuvwxyzabcdef-ghij/0101001v3",
    "https://" + "x" * 600,
    "<ada@example.org>",
    "ada@example.org, eve@example.org",
]


def json_values(max_leaves: int = 10) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.sampled_from([2**31, 2**63, 2**64, 2**70, -1, 1e20, -62135596801, 253402300800])
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(NASTY_STRINGS)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=max_leaves,
    )


# --- 1. The signup form -----------------------------------------------------------------------

SIGNUP_FIELDS = tuple(SignupForm.field_order)
# Text a test client can post: any character except lone surrogates, which no browser sends.
ANY_TEXT = st.text(max_size=300)
ASCII_ODD = st.text(alphabet=string.printable + "\x00\x0b\x0c\x85\u2028", max_size=80)


def addresses() -> st.SearchStrategy[str]:
    """Addresses an EmailField may accept, and near misses: quoted local parts with commas or
    a second "@", Unicode domains, header injection, several addresses in one field."""
    local = st.from_regex(r"[A-Za-z0-9.+_-]{1,20}", fullmatch=True)
    quoted_local = st.text(
        alphabet=string.ascii_letters + ',@ ;<>"\\\x01\x0b\x0c\x7f', min_size=0, max_size=12
    ).map(lambda s: f'"{s}"')
    label = st.text(
        alphabet=string.ascii_lowercase + string.digits + "-éßü\u3002\uff0e",
        min_size=1,
        max_size=12,
    )
    domain = st.lists(label, min_size=1, max_size=3).map(".".join) | st.sampled_from(
        ["example.org", "EXAMPLE.org", "localhost", "[127.0.0.1]", "xn--bcher-kva.example"]
    )
    joined = st.builds(lambda u, d: f"{u}@{d}", local | quoted_local, domain)
    return st.one_of(
        st.emails(),
        joined,
        st.builds(
            lambda a, sep, b: f"{a}{sep}{b}", st.emails(), st.sampled_from(SEPARATORS), joined
        ),
        st.builds(
            lambda pad, a: f"{pad}{a}{pad}", st.sampled_from([" ", "\t", "\n", " \r\n"]), joined
        ),
        ANY_TEXT,
    )


SEPARATORS = [",", ", ", ";", "\n", "\r\nBcc: ", " ", "\x00"]


def field_values(name: str, topic_ids: list[str]) -> st.SearchStrategy[Any]:
    """A plausible value for one field of the signup form."""
    keyword = st.sampled_from(["diffusion models", '"graph neural networks", RLHF', "LLM\nagents"])
    plausible: dict[str, st.SearchStrategy[Any]] = {
        "email": addresses(),
        "topics": st.lists(st.sampled_from(topic_ids), max_size=3),
        "keywords": keyword,
        "about": st.sampled_from(["", "I train small networks for microcontrollers."]),
        "liked": st.sampled_from(
            ["", "2503.12345", "https://arxiv.org/abs/2402.00001v2, hep-th/9901001"]
        ),
        "authors": st.sampled_from(["", "Song Han", "Ada Lovelace; Alan Turing"]),
        "excluded_keywords": st.sampled_from(["", "medical", "crypto, blockchain"]),
        "library": st.just(""),  # a file field: a posted text is no upload
        "trending_weight": st.sampled_from(["", "0.0", "0.2", "0.8"]),
        "frequency": st.sampled_from(["daily", "weekly"]),
        "weekday": st.sampled_from([str(d) for d in range(7)]),
        "send_hour": st.sampled_from([str(h) for h in range(24)]),
        "timezone": st.sampled_from(["UTC", "Europe/Paris", "America/St_Johns", "Asia/Kathmandu"]),
        "consent": st.sampled_from(["on", "true", "1"]),
        "website": st.just(""),
    }
    return plausible[name]


def hostile_values() -> st.SearchStrategy[Any]:
    """Anything at all: text, odd ASCII, huge or empty values, several values for one name."""
    one = ANY_TEXT | ASCII_ODD | st.sampled_from(["", " ", "-1", "24", "1e9", "0x10", "٣", "None"])
    return one | st.lists(one, min_size=2, max_size=3) | st.just("x" * 5000)


@st.composite
def signup_posts(draw: st.DrawFn, topic_ids: list[str]) -> dict[str, Any]:
    """A signup POST where a few fields (or none) are hostile and the rest plausible, so many
    examples get past the form into the signup itself."""
    hostile = draw(st.sets(st.sampled_from(SIGNUP_FIELDS), max_size=4))
    missing = draw(st.sets(st.sampled_from(SIGNUP_FIELDS), max_size=1))
    post: dict[str, Any] = {}
    for name in SIGNUP_FIELDS:
        if name in missing:
            continue
        strategy = hostile_values() if name in hostile else field_values(name, topic_ids)
        post[name] = draw(strategy)
    return post


def a_single_valid_address(email: str) -> bool:
    """What the digest pipeline and every ESP can send to: one plain address, its local part
    quoted or not."""
    try:
        validate_email(email)
    except ValidationError:
        return False
    local, _, domain = email.rpartition("@")
    bare = local[1:-1] if len(local) > 1 and local[0] == local[-1] == '"' else local
    if any(c in ',"<>;\\@' or c.isspace() or not c.isprintable() for c in bare + domain):
        return False  # a quoted local part holding what splits or mangles an address
    try:
        domain.encode("idna")  # what sending to it takes
    except UnicodeError:
        return False
    return True


def test_the_signup_form_survives_anything_and_stores_only_single_valid_addresses(  # type: ignore[no-untyped-def]
    client, settings
) -> None:
    settings.NEWSLETTER_SIGNUPS_PER_IP = 10**6
    settings.NEWSLETTER_SIGNUPS_PER_ADDRESS = 10**6
    topic_ids = [str(pk) for pk in Topic.objects.values_list("pk", flat=True)] or ["1"]

    @examples(150)
    @given(posts=st.lists(signup_posts(topic_ids), min_size=1, max_size=3))
    def check(posts: list[dict[str, Any]]) -> None:
        with rolled_back():
            for post in posts:  # the same address twice exercises the "already there" path
                response = client.post("/", post)
                assert response.status_code in (200, 302, 303, 400, 429), post
            stored = list(Subscriber.objects.values_list("email", flat=True))
            for email in stored:
                assert a_single_valid_address(email), (email, posts)
            event(f"{len(stored)} subscribers stored")  # --hypothesis-show-statistics

    check()


# --- 2. Signed links --------------------------------------------------------------------------

TOKEN_PATHS = [
    "/confirm/{token}/",
    "/manage/{token}/",
    "/manage/{token}/export/",
    "/manage/{token}/delete/",
    "/unsubscribe/{token}/",
    "/digest/{token}/",
    "/digest/{token}/{paper}/more/",
    "/digest/{token}/{paper}/less/",
    "/digest/{token}/{paper}/{kind}/",
]
PURPOSES = ["confirm", "manage", "unsubscribe", "digest"]
URL_SAFE = string.ascii_letters + string.digits + "-_.~:"


def link_world() -> dict[str, Any]:
    """A reader with a sent digest of one paper that has an id, a project page and code."""
    reader = active_subscriber(READER, ["graph neural networks"])
    paper = Paper.objects.create(
        title="GNNs at scale",
        title_key="gnns at scale",
        arxiv_id="2511.00001",
        project_page="https://gnn.example.org/",
        github_repo="https://github.com/example/gnn",
        source="hf-json",
    )
    digest = Digest.objects.create(
        subscriber=reader, period="2026-11-22", status=Digest.Status.SENT, sent_at=timezone.now()
    )
    digest.items.create(paper=paper, rank=1, score=1.0, reason="matches your keyword")
    return {"reader": reader, "paper": paper, "digest": digest}


@st.composite
def links(draw: st.DrawFn, world: dict[str, Any]) -> list[str]:
    """One URL per token-reading page: a validly signed value for that page's purpose (or
    another's), of the shape the page expects or any other, cut short or extended, or
    plain garbage; for a paper of the digest or any other, and any kind of link."""
    ids = (
        st.sampled_from([world["reader"].pk, world["digest"].pk, world["paper"].pk]) | st.integers()
    )
    kinds = st.sampled_from([*world["paper"].digest_links(), "project", "more", "less"]) | st.text(
        alphabet=URL_SAFE, min_size=1, max_size=12
    )
    any_shape = st.one_of(
        ids,
        json_values(),
        st.lists(ids | json_values(3), max_size=4),
        st.floats(allow_infinity=False),
    )
    mangle = draw(st.sampled_from(["none", "none", "none", "cut", "extend", "garbage", "quoted"]))
    wrong_purpose = draw(st.integers(min_value=0, max_value=4)) == 0
    urls = []
    for path in TOKEN_PATHS:
        purpose = draw(st.sampled_from(PURPOSES)) if wrong_purpose else path.split("/")[1]
        value = draw(ids | any_shape)
        token = emails.sign(value, purpose)
        if mangle == "cut":
            token = token[: draw(st.integers(min_value=1, max_value=len(token) - 1))]
        elif mangle == "extend":
            token += draw(st.text(alphabet=URL_SAFE, min_size=1, max_size=5))
        elif mangle == "garbage":
            token = draw(st.text(alphabet=URL_SAFE, min_size=1, max_size=120))
        elif mangle == "quoted":
            token = quote(draw(st.text(min_size=1, max_size=60)), safe="")
        paper = draw(st.just(world["paper"].pk) | st.integers(min_value=0))
        urls.append(path.format(token=token, paper=paper, kind=quote(draw(kinds), safe="")))
    return urls


def test_no_signed_link_answers_a_500_or_redirects_off_site(client) -> None:  # type: ignore[no-untyped-def]
    world = link_world()
    own_links = set(world["paper"].digest_links().values())
    token = emails.sign(world["digest"].pk, "digest")
    beyond_a_bigint = 2**63  # an OverflowError (500) on SQLite, found once by a random seed

    @examples(150)
    @example(
        urls=[
            f"/digest/{token}/{beyond_a_bigint}/main/",
            f"/digest/{token}/{beyond_a_bigint}/more/",
            f"/digest/{emails.sign(beyond_a_bigint, 'digest')}/",
            f"/manage/{emails.sign(beyond_a_bigint, 'manage')}/",
            f"/admin/newsletter/subscriber/{beyond_a_bigint}/preview/",
        ],
        method="get",
        form={},
    )
    @given(
        urls=links(world),
        method=st.sampled_from(["get", "get", "post", "head"]),
        form=st.dictionaries(
            st.sampled_from(["action", "keywords", "timezone", "topics", "send_hour"]),
            st.sampled_from(["pause", "resume", "unsubscribe", "save"]) | ANY_TEXT,
            max_size=3,
        ),
    )
    def check(urls: list[str], method: str, form: dict[str, str]) -> None:
        with rolled_back():
            for url in urls:
                send = getattr(client, method)
                response = send(url, form) if method == "post" else send(url)
                assert response.status_code < 500, (url, method, form)
                event(f"{url.split('/')[1]}: {response.status_code}")
                if url.startswith("/digest/") and 300 <= response.status_code < 400:
                    location = response["Location"]
                    assert location in own_links, location

    check()


def url_patterns(patterns: list[Any]) -> Iterator[Any]:
    for pattern in patterns:
        yield pattern
        yield from url_patterns(getattr(pattern, "url_patterns", []))


def test_no_url_takes_a_number_the_database_cannot_hold() -> None:
    # Django's <int:...> matches any number of digits: 2**63 raised OverflowError on SQLite.
    unbounded = [
        str(p.pattern)
        for p in url_patterns(get_resolver().url_patterns)
        if any(isinstance(c, IntConverter) for c in getattr(p.pattern, "converters", {}).values())
    ]
    assert unbounded == []
    with pytest.raises(Resolver404):
        resolve(f"/digest/{emails.sign(1, 'digest')}/{2**63}/main/")


# --- 3. The paper parsers and the importer -------------------------------------------------------

ATOM = """<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
  <entry>
    <id>http://arxiv.org/abs/2503.01234v2</id>
    <published>2026-03-03T17:59:59Z</published>
    <title>Learning to Route Tokens in Sparse Transformers</title>
    <summary>We study routing in mixture-of-experts models.</summary>
    <author><name>Grace Hopper</name></author>
    <arxiv:primary_category term="cs.LG" scheme="http://arxiv.org/schemas/atom"/>
    <category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/>
  </entry>
  <entry>
    <id>http://arxiv.org/abs/math-ph/0101001v1</id>
    <title>An old-style identifier</title>
    <summary>Still a paper.</summary>
  </entry>
</feed>"""


def hf_page(items: list[Any]) -> str:
    props = html.escape(json.dumps({"dailyPapers": items}), quote=True)
    return (
        '<html><body><div data-target="DailyPapers" '
        f'data-props="{props}"></div>'
        '<h3><a href="/papers/2503.12345">Scaling Diffusion Transformers</a></h3>'
        "</body></html>"
    )


REAL_PAYLOADS: dict[str, list[str]] = {
    "hf-json": [json.dumps([hf_item(), hf_item(arxiv_id="2503.54321", title="Second")])],
    "hf-html": [hf_page([hf_item()])],
    "arxiv": [ATOM],
    "text": list(FIXTURE_TEXT.values()),
}
# Decoded the way the importer decodes a fetched page: undecodable bytes become U+FFFD.
RANDOM_BYTES = st.binary(max_size=600).map(lambda b: b.decode("utf-8", errors="replace"))
# Any str, lone surrogates included: the importer never passes one, but a parser's contract
# is about whatever str it is given.
RANDOM_TEXT = (
    st.text(max_size=600)
    | st.text(st.characters(exclude_categories=()), max_size=100)
    | st.text(alphabet="<>[]{}\"':,/\n &;#xX0123456789", max_size=300)
)


def parse_or_source_error(fmt: str, data: str) -> Parsed | None:
    """The parser contract: a ``Parsed`` or a ``SourceError``, never another exception."""
    try:
        parsed = PARSERS[fmt](data)
    except SourceError:
        return None
    assert isinstance(parsed, Parsed)
    return parsed


@examples(300)
@given(fmt=st.sampled_from(sorted(PARSERS)), data=RANDOM_TEXT | RANDOM_BYTES)
def test_a_parser_given_noise_returns_records_or_a_source_error(fmt: str, data: str) -> None:
    parse_or_source_error(fmt, data)


@st.composite
def truncated_payloads(draw: st.DrawFn) -> tuple[str, str]:
    fmt = draw(st.sampled_from(sorted(REAL_PAYLOADS)))
    payload = draw(st.sampled_from(REAL_PAYLOADS[fmt]))
    start = draw(st.integers(min_value=0, max_value=len(payload)) | st.just(0))
    end = draw(st.integers(min_value=start, max_value=len(payload)))
    return fmt, payload[start:end]


@examples(300)
@given(truncated_payloads())
def test_a_parser_given_a_truncated_real_payload_returns_records_or_a_source_error(
    cut: tuple[str, str],
) -> None:
    fmt, data = cut
    parse_or_source_error(fmt, data)


HOSTILE_FIELD_VALUES = json_values(6) | st.sampled_from(NASTY_STRINGS)
HF_FIELDS = [
    "id",
    "title",
    "summary",
    "authors",
    "publishedAt",
    "submittedOnDailyAt",
    "upvotes",
    "githubRepo",
    "githubStars",
    "projectPage",
    "ai_summary",
    "ai_keywords",
    "withdrawnAt",
]


@st.composite
def hostile_hf_items(draw: st.DrawFn) -> dict[str, Any]:
    """A realistic Daily Papers item with a few inner or outer fields replaced or removed."""
    item = hf_item(arxiv_id=draw(st.sampled_from(["2503.12345", "2503.54321", "2503.1"])))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        inner = draw(st.booleans())
        target = item["paper"] if inner else item
        key = draw(
            st.sampled_from(
                HF_FIELDS
                if inner
                else ["title", "summary", "numComments", "thumbnail", "publishedAt"]
            )
        )
        if draw(st.integers(min_value=0, max_value=5)) == 0:
            target.pop(key, None)
        else:
            target[key] = draw(HOSTILE_FIELD_VALUES)
        if key == "authors" and draw(st.booleans()):
            target[key] = [{"name": draw(HOSTILE_FIELD_VALUES)}]
    return item


def xml_text(value: Any) -> str:
    return escape(value if isinstance(value, str) else json.dumps(value))


@st.composite
def hostile_atom_feeds(draw: st.DrawFn) -> str:
    """An arXiv feed whose entries carry random ids, titles, dates and categories."""
    entries = []
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        field = draw(
            st.fixed_dictionaries(
                {},
                optional=dict.fromkeys(
                    ["id", "title", "summary", "published", "name", "term"], HOSTILE_FIELD_VALUES
                ),
            )
        )
        entries.append(
            "<entry>"
            f"<id>{xml_text(field.get('id', 'http://arxiv.org/abs/2503.01234v2'))}</id>"
            f"<title>{xml_text(field.get('title', 'A title'))}</title>"
            f"<summary>{xml_text(field.get('summary', 'An abstract.'))}</summary>"
            f"<published>{xml_text(field.get('published', '2026-03-03T17:59:59Z'))}</published>"
            f"<author><name>{xml_text(field.get('name', 'Grace Hopper'))}</name></author>"
            f'<category term="{xml_text(field.get("term", "cs.LG"))}"/>'
            "</entry>"
        )
    return ATOM.split("<entry>")[0] + "".join(entries) + "</feed>"


@st.composite
def structured_payloads(draw: st.DrawFn) -> tuple[str, str]:
    """Well-formed payloads of each format whose fields hold anything at all."""
    fmt = draw(st.sampled_from(["hf-json", "hf-html", "arxiv", "text"]))
    if fmt == "arxiv":
        return fmt, draw(hostile_atom_feeds())
    if fmt == "text":
        title, abstract = draw(st.text(min_size=1, max_size=80)), draw(st.text(max_size=200))
        return fmt, f"Nov 20\n\n{title}\n\n{abstract or 'An abstract.'}\n"
    items = draw(st.lists(hostile_hf_items(), min_size=1, max_size=3))
    return fmt, json.dumps(items) if fmt == "hf-json" else hf_page(items)


@examples(300)
@given(structured_payloads())
def test_a_parser_given_odd_field_values_returns_records_or_a_source_error(
    payload: tuple[str, str],
) -> None:
    fmt, data = payload
    parse_or_source_error(fmt, data)


def test_an_import_of_hostile_payloads_never_raises_or_leaves_a_partial_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "payload"

    @examples(150)
    @given(structured_payloads() | truncated_payloads())
    def check(payload: tuple[str, str]) -> None:
        fmt, data = payload
        source.write_text(data, encoding="utf-8", errors="surrogatepass")
        with rolled_back():
            before = Paper.objects.count()
            try:
                summary = import_sources([str(source)], fmt=fmt)
            except Exception as exc:
                left = Paper.objects.count() - before
                raise AssertionError(f"the import raised, leaving {left} papers") from exc
            papers = list(Paper.objects.all())
            assert len(papers) == before + summary.new
            for paper in papers:  # every row complete and valid as the model defines it
                paper.full_clean(exclude=["title_key"], validate_unique=False)
                assert paper.title.strip() and paper.source == fmt

    check()


# --- 4. Provider webhooks ----------------------------------------------------------------------

WEBHOOK_PATHS = {
    "postmark": "/anymail/postmark/tracking/",
    "mailgun": "/anymail/mailgun/tracking/",
    "amazon_ses": "/anymail/amazon_ses/tracking/",
}


def mutate(data: st.DataObject, value: Any, depth: int = 0) -> Any:
    """The value with one spot changed: a key deleted, a value replaced by random JSON, or a
    nested SES message mutated inside its JSON string."""
    if isinstance(value, str) and value.startswith("{") and depth < 4:
        with contextlib.suppress(ValueError):
            return json.dumps(mutate(data, json.loads(value), depth + 1))
    if isinstance(value, dict) and value and depth < 4:
        key = data.draw(st.sampled_from(sorted(value)))
        action = data.draw(st.sampled_from(["delete", "replace", "descend", "descend"]))
        changed = dict(value)
        if action == "delete":
            del changed[key]
        elif action == "replace":
            changed[key] = data.draw(json_values(6))
        else:
            changed[key] = mutate(data, value[key], depth + 1)
        return changed
    if isinstance(value, list) and value and depth < 4:
        index = data.draw(st.integers(min_value=0, max_value=len(value) - 1))
        return [*value[:index], mutate(data, value[index], depth + 1), *value[index + 1 :]]
    return data.draw(json_values(6))


def poison(data: st.DataObject, value: Any) -> Any:
    """The value with some of its leaves (timestamps, addresses, ids...) made nasty."""
    if isinstance(value, str) and value.startswith("{"):
        with contextlib.suppress(ValueError):
            return json.dumps(poison(data, json.loads(value)))
    if isinstance(value, dict):
        return {key: poison(data, item) for key, item in value.items()}
    if isinstance(value, list):
        return [poison(data, item) for item in value]
    if data.draw(st.integers(min_value=0, max_value=3)) == 0:
        return data.draw(st.sampled_from(NASTY_STRINGS) | json_values(1))
    return value


KINDS = ["delivered", "hard bounce", "soft bounce", "complaint", "open", "click"]


def test_a_webhook_given_any_body_answers_below_500_and_a_4xx_stores_nothing(  # type: ignore[no-untyped-def]
    client, settings, django_capture_on_commit_callbacks
) -> None:
    settings.ANYMAIL = {
        "WEBHOOK_SECRET": [CREDENTIALS],
        "MAILGUN_WEBHOOK_SIGNING_KEY": MAILGUN_KEY,
    }
    reader = active_subscriber(READER, ["graph neural networks"])
    Digest.objects.create(
        subscriber=reader, period="2026-11-22", status="sent", message_id=f"<{MESSAGE_ID}>"
    )
    Digest.objects.create(subscriber=reader, period="2026-11-23")
    auth = "Basic " + base64.b64encode(CREDENTIALS.encode()).decode()
    realistic: dict[str, Callable[..., tuple[str, str, dict[str, str]]]] = PROVIDERS

    @examples(200)
    @given(
        provider=st.sampled_from(sorted(realistic)),
        kind=st.sampled_from(KINDS),
        shape=st.sampled_from(["mutated", "mutated", "poisoned", "poisoned", "json", "bytes"]),
        data=st.data(),
    )
    def check(provider: str, kind: str, shape: str, data: st.DataObject) -> None:
        esp, body, headers = realistic[provider](kind)
        payload: str | bytes
        if shape == "mutated":
            payload = json.dumps(mutate(data, json.loads(body)))
        elif shape == "poisoned":
            payload = json.dumps(poison(data, json.loads(body)))
        elif shape == "json":
            payload = json.dumps(data.draw(json_values(15)))
        else:
            payload = data.draw(st.binary(max_size=300))
        with rolled_back():
            before = DeliveryEvent.objects.count()
            with django_capture_on_commit_callbacks(execute=False):
                response = client.post(
                    WEBHOOK_PATHS[esp],
                    data=payload,
                    content_type="application/json",
                    HTTP_AUTHORIZATION=auth,
                    **headers,
                )
            assert response.status_code < 500, (payload, response.content[:300])
            event(f"{esp} {shape}: {response.status_code}")
            if 400 <= response.status_code < 500:
                assert DeliveryEvent.objects.count() == before, payload
            stored = DeliveryEvent.objects.filter(processed_at__isnull=True)
            for event_id in stored.values_list("pk", flat=True):
                tracking.apply_event(event_id)  # what the task does with the stored event

    check()
