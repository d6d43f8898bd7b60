"""Every email Paperboy sends is built here, from three Jinja2 templates per email:
``emails/<name>-subject.html``, ``-body-text.html`` and ``-body-html.html`` (only the HTML body
is autoescaped).
"""

from __future__ import annotations

import re
import secrets
import textwrap
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

import css_inline
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from jinja2 import Environment, StrictUndefined

from newsletter.models import Digest, Subscriber
from papers.ranking import Section, Signal

# The @media rules (narrow screens, dark mode) cannot be inlined: they stay in a <style>.
_inliner = css_inline.CSSInliner(keep_style_tags=False, keep_at_rules=True)


class Email(EmailMultiAlternatives):
    """An email whose MIME boundaries are chosen when the message is built.

    Left to itself, Python's generator picks a boundary per message and compiles a regular
    expression to check that the text does not contain it: a quarter of generating a digest.
    A random 128-bit token cannot be in the text by chance, nor be known to whoever wrote it.
    """

    def message(self, *args: Any, **kwargs: Any) -> Any:
        built = super().message(*args, **kwargs)
        for part in built.walk():
            if part.is_multipart():
                part.set_boundary(f"=_{secrets.token_hex(16)}")
        return built


def environment(**options: Any) -> Environment:
    """The Jinja2 environment of the "emails" template engine (``settings.TEMPLATES``)."""
    return Environment(
        **{
            **options,
            "autoescape": lambda name: bool(name and name.endswith("-body-html.html")),
            "undefined": StrictUndefined,  # a misspelt variable fails a test, not a reader
            "keep_trailing_newline": True,
        }
    )


def render(name: str, context: dict[str, Any]) -> str:
    return render_to_string(f"emails/{name}", context, using="emails")


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def sign(value: object, purpose: str) -> str:
    return signing.dumps(value, salt=f"newsletter.{purpose}", compress=True)


def signed_id(token: str, purpose: str, max_age: int | None = None) -> int | None:
    """The row id a link ``sign``-ed for ``purpose`` carries; None when the token is tampered
    with, expired, or holds anything but an id the database can hold."""
    try:
        value = signing.loads(token, salt=f"newsletter.{purpose}", max_age=max_age)
    except signing.BadSignature:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        return None
    return value


def unsubscribe_url(subscriber: Subscriber) -> str:
    return absolute(reverse("unsubscribe", args=[sign(subscriber.id, "unsubscribe")]))


def manage_url(subscriber: Subscriber) -> str:
    return absolute(reverse("manage", args=[sign(subscriber.id, "manage")]))


def digest_url(digest: Digest) -> str:
    """The digest's own page ("view in your browser"), the link readers forward. Its token
    has a purpose of its own: whoever it is forwarded to cannot make the reader's click and
    feedback links from it (``reader_links_url``)."""
    return absolute(reverse("digest_view", args=[sign(digest.id, "digest-page")]))


def reader_links_url(digest: Digest) -> str:
    """What the digest's click and feedback links start with: only the email carries it."""
    return absolute(reverse("digest_view", args=[sign(digest.id, "digest")]))


def feed_url(subscriber: Subscriber) -> str:
    """The reader's private feed: the token names them and their current feed key, so a new
    key (``subscriptions.reset_feed``) revokes every earlier URL."""
    token = sign([subscriber.id, subscriber.feed_key], "feed")
    return absolute(reverse("feed", args=[token]))


def feed_subscriber(token: str) -> Subscriber | None:
    """The subscriber a feed token names, while it is their current one; else None."""
    try:
        value = signing.loads(token, salt="newsletter.feed")
    except signing.BadSignature:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        return None
    pk, key = value
    if isinstance(pk, bool) or not isinstance(pk, int) or not 0 < pk < 2**63:
        return None
    if not isinstance(key, str):
        return None
    return Subscriber.objects.filter(pk=pk, feed_key=key).first()


def list_id() -> str:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"{settings.SITE_NAME} digest <digest.{host}>"


def email_context(subscriber: Subscriber, context: dict[str, Any]) -> dict[str, Any]:
    """What every email template may use, with ``context`` on top. A context may set
    ``manage_url`` and ``unsubscribe_url`` itself (to None on the shareable web view)."""
    context = {
        "subscriber": subscriber,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_NAME,
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        **context,
    }
    if "manage_url" not in context:
        context["manage_url"] = manage_url(subscriber)
    if "unsubscribe_url" not in context:
        context["unsubscribe_url"] = unsubscribe_url(subscriber)
    return context


def build_email(
    name: str, subscriber: Subscriber, context: dict[str, Any], transactional: bool
) -> EmailMultiAlternatives:
    """Render one email for ``subscriber``. Non-transactional mail carries the RFC 8058
    one-click unsubscribe headers."""
    context = email_context(subscriber, context)
    # One line, whatever the template says: a newline in a subject would inject headers.
    subject = " ".join(render(f"{name}-subject.html", context).split())
    text = render(f"{name}-body-text.html", context)
    html = _inliner.inline(render(f"{name}-body-html.html", context))
    headers = {"List-Id": list_id()}
    if not transactional:
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = Email(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        reply_to=[settings.NEWSLETTER_REPLY_TO] if settings.NEWSLETTER_REPLY_TO else None,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


@lru_cache(maxsize=4096)
def excerpt(text: str, limit: int = 320) -> str:
    """Two or three lines of a paper's AI summary or abstract (cached: a round of digests
    shows the same few hundred papers over and over)."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    sentence_end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    if sentence_end > limit // 2:
        return cut[: sentence_end + 1]
    return re.sub(r"\s+\S*$", "", cut) + "…"


# The sentence of an abstract that states its contribution: "We propose ...", "This paper
# introduces ...", "Here we show ...".
CONTRIBUTION = re.compile(
    r"\b(?:we|this (?:paper|work|article)|our (?:method|approach|work)|here)\b[^.]{0,80}?\b"
    r"(?:propose|present|introduce|develop|show|demonstrate|describe|design|release|study|"
    r"investigate|find|offer|build|report)",
    re.I,
)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'])")


@lru_cache(maxsize=4096)
def one_line(summary: str, abstract: str, limit: int = 240) -> str:
    """A paper in one line: the Daily Papers AI summary when known, else the sentence of the
    abstract that states the contribution (else its first sentence)."""
    if summary.strip():
        return shorten(" ".join(summary.split()), limit)
    sentences = [s for s in SENTENCE_END.split(" ".join(abstract.split())) if s]
    if not sentences:
        return ""
    stated = next((s for s in sentences if CONTRIBUTION.search(s)), sentences[0])
    return shorten(stated, limit)


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return re.sub(r"\s+\S*$", "", text[:limit]) + "…"


def authors_line(authors: list[str]) -> str:
    """The first three authors, then "et al."."""
    if len(authors) <= 3:
        return ", ".join(authors)
    return ", ".join(authors[:3]) + " et al."


@lru_cache(maxsize=4096)
def indented(text: str) -> str:
    return textwrap.fill(text, width=75, initial_indent="   ", subsequent_indent="   ")


AUTHORS_HEADING = "From authors you follow"
MATCH_HEADING = "Picked for your interests"
TRENDING_HEADING = "Trending now"
# Where a preview's reader links lead: nowhere. A preview's digest is rolled back, so a token
# naming it could later name another reader's digest; and staff need no reader's manage or
# unsubscribe link to see what the reader would get.
NOWHERE = "#"


def nothing_matched(digest: Digest) -> bool:
    """A digest of trending papers only: nothing passed the relevance floor."""
    items = digest.items.all()
    return bool(items) and all(i.section == Section.TRENDING for i in items)


def digest_context(digest: Digest, preview: bool = False, shared: bool = False) -> dict[str, Any]:
    """What the digest templates show; ``digest.items`` should be prefetched with papers and
    profiles (``digests.TO_RENDER``).

    Two signed tokens per digest: the digest's own page (``view_url``), and the reader's
    links, each paper's (``<reader_links_url><paper id>/<link kind>/``, through the click
    redirect, which counts the click) and its "more/less like this" links
    (``<reader_links_url><paper id>/more/`` and ``less/``); see ``newsletter/urls.py``.
    Signing every link instead cost more than rendering the email.
    A ``preview`` signs nothing: papers link to their own pages, the reader's links to NOWHERE.
    The ``shared`` web page links papers to their own pages too and has no feedback links:
    whoever it was forwarded to must not count as the reader's clicks or train their ranking.

    Items come in sections: followed authors' papers, then one per profile (named after it,
    in the profiles' order), or the trending papers when nothing matched; headings show when
    there is more than one section. What an item says comes from its reason as data.
    """
    view_url = NOWHERE if preview else digest_url(digest)
    links_url = NOWHERE if preview or shared else reader_links_url(digest)
    grouped: dict[tuple[int, int], dict[str, Any]] = {}
    for item in digest.items.all():
        paper = item.paper
        reason = item.reason_data
        item.why_text = reason.text  # type: ignore[attr-defined]
        # "trending" once: a pick whose reason is trending itself does not say it again.
        item.trending = reason.trending and reason.signal != Signal.TRENDING  # type: ignore[attr-defined]
        item.votes = paper.upvotes  # type: ignore[attr-defined]
        item.comments = paper.comments  # type: ignore[attr-defined]
        item.authors_line = authors_line(paper.authors)  # type: ignore[attr-defined]
        item.excerpt = one_line(paper.ai_summary, paper.abstract)  # type: ignore[attr-defined]
        item.excerpt_text = indented(item.excerpt)  # type: ignore[attr-defined]
        if preview or shared:
            item.links = paper.digest_links()  # type: ignore[attr-defined]
            item.more_url = item.less_url = NOWHERE if preview else None  # type: ignore[attr-defined]
        else:
            under = f"{links_url}{paper.id}/"
            item.links = {  # type: ignore[attr-defined]
                kind: url and f"{under}{kind}/" for kind, url in paper.digest_links().items()
            }
            item.more_url = f"{under}more/"  # type: ignore[attr-defined]
            item.less_url = f"{under}less/"  # type: ignore[attr-defined]
        if item.section == Section.AUTHORS:
            key, heading = (0, 0), AUTHORS_HEADING
        elif item.section == Section.TRENDING:
            key, heading = (2, 0), TRENDING_HEADING
        elif item.profile is not None:
            key, heading = (1, item.profile.slot), item.profile.name
        else:  # its profile was deleted since
            key, heading = (1, 99), MATCH_HEADING
        grouped.setdefault(key, {"heading": heading, "items": []})["items"].append(item)
    sections = [grouped[key] for key in sorted(grouped)]
    if len(sections) == 1:
        sections[0]["heading"] = ""
    items = [item for section in sections for item in section["items"]]
    for number, item in enumerate(items, 1):
        item.number = number  # type: ignore[attr-defined]
    picked = sum(1 for i in items if i.section != Section.TRENDING)
    context = {
        "digest": digest,
        "items": items,
        "sections": sections,
        "view_url": view_url,
        "header": header_line(digest, picked),
    }
    if preview:
        context |= {"manage_url": NOWHERE, "unsubscribe_url": NOWHERE}
    return context


def header_line(digest: Digest, picked: int) -> str:
    """What was weighed: "7 of 143 new papers matched your interests" (digests from before it
    was counted say nothing)."""
    if digest.considered is None or digest.matched is None:
        return ""
    considered, matched = digest.considered, digest.matched
    papers = "paper" if considered == 1 else "papers"
    if not matched:
        return f"None of the {considered:,} new {papers} matched your interests."
    line = f"{matched:,} of {considered:,} new {papers} matched your interests"
    if picked < matched:
        line += f"; here are the best {picked}"
    return line + "."


def digest_email(digest: Digest, preview: bool = False) -> EmailMultiAlternatives:
    """The digest as mailed to its reader (the short "nothing matched" email when nothing
    passed the floor); a ``preview`` (the admin's preview and test send) carries no working
    link of any reader's, and no list headers."""
    assert digest.subscriber is not None
    context = digest_context(digest, preview)
    name = "nothing-matched" if nothing_matched(digest) else "digest"
    return build_email(name, digest.subscriber, context, transactional=preview)


def digest_page(digest: Digest) -> str:
    """The digest as the shareable web page ``/digest/<token>/`` shows it: whoever the reader
    forwarded the link to gets the papers, linked directly, not the reader's manage and
    unsubscribe links nor their click-counting and feedback links."""
    assert digest.subscriber is not None
    context = {**digest_context(digest, shared=True), "manage_url": None, "unsubscribe_url": None}
    name = "nothing-matched" if nothing_matched(digest) else "digest"
    return render(f"{name}-body-html.html", email_context(digest.subscriber, context))
