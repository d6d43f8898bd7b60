"""Every email Paperboy sends is built here, from three templates per email:
``emails/<name>-subject.html``, ``-body-text.html`` and ``-body-html.html``.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any
from urllib.parse import urlsplit

import css_inline
from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from newsletter.models import Digest, DigestItem, Subscriber

_inliner = css_inline.CSSInliner(keep_style_tags=False)


def absolute(path: str) -> str:
    return f"{settings.SITE_URL}{path}"


def sign(value: object, purpose: str) -> str:
    return signing.dumps(value, salt=f"newsletter.{purpose}", compress=True)


def unsubscribe_url(subscriber: Subscriber) -> str:
    return absolute(reverse("unsubscribe", args=[sign(subscriber.id, "unsubscribe")]))


def manage_url(subscriber: Subscriber) -> str:
    return absolute(reverse("manage", args=[sign(subscriber.id, "manage")]))


def list_id() -> str:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    return f"{settings.SITE_NAME} digest <digest.{host}>"


def build_email(
    name: str, subscriber: Subscriber, context: dict[str, Any], transactional: bool
) -> EmailMultiAlternatives:
    """Render one email for ``subscriber``. Non-transactional mail carries the RFC 8058
    one-click unsubscribe headers."""
    context = {
        "subscriber": subscriber,
        "site_url": settings.SITE_URL,
        "site_name": settings.SITE_NAME,
        "manage_url": manage_url(subscriber),
        "unsubscribe_url": unsubscribe_url(subscriber),
        "postal_address": settings.NEWSLETTER_POSTAL_ADDRESS,
        **context,
    }
    # One line, whatever the template says: a newline in a subject would inject headers.
    subject = " ".join(render_to_string(f"emails/{name}-subject.html", context).split())
    text = render_to_string(f"emails/{name}-body-text.html", context)
    html = _inliner.inline(render_to_string(f"emails/{name}-body-html.html", context))
    headers = {"List-Id": list_id()}
    if not transactional:
        headers["List-Unsubscribe"] = f"<{context['unsubscribe_url']}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
        reply_to=[settings.NEWSLETTER_REPLY_TO] if settings.NEWSLETTER_REPLY_TO else None,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return message


def excerpt(item: DigestItem, limit: int = 320) -> str:
    """Two or three lines: the AI summary when there is one, else the abstract's start."""
    text = item.paper.ai_summary or item.paper.abstract
    if len(text) <= limit:
        return text
    cut = text[:limit]
    sentence_end = max(cut.rfind(". "), cut.rfind("? "), cut.rfind("! "))
    if sentence_end > limit // 2:
        return cut[: sentence_end + 1]
    return re.sub(r"\s+\S*$", "", cut) + "…"


def tracked_url(digest_id: int, paper_id: int, url: str) -> str:
    """A paper link through the click redirect (``digest_views.follow``)."""
    return absolute(reverse("follow", args=[sign([digest_id, paper_id, url], "click")]))


def digest_context(digest: Digest) -> dict[str, Any]:
    """What the digest templates show; ``digest.items`` should be prefetched with papers."""
    items = []
    for item in digest.items.all():
        paper = item.paper
        item.excerpt = text = excerpt(item)  # type: ignore[attr-defined]
        item.excerpt_text = textwrap.fill(  # type: ignore[attr-defined]
            text, width=75, initial_indent="   ", subsequent_indent="   "
        )
        # Every paper link goes through the click redirect, which counts it as interest.
        item.links = {  # type: ignore[attr-defined]
            kind: url and tracked_url(digest.id, paper.id, url)
            for kind, url in paper.digest_links().items()
        }
        item.more_url = absolute(  # type: ignore[attr-defined]
            reverse("feedback", args=[sign([digest.id, paper.id, 1], "feedback")])
        )
        item.less_url = absolute(  # type: ignore[attr-defined]
            reverse("feedback", args=[sign([digest.id, paper.id, -1], "feedback")])
        )
        items.append(item)
    return {
        "digest": digest,
        "items": items,
        "view_url": absolute(reverse("digest_view", args=[sign(digest.id, "digest")])),
    }


def digest_email(digest: Digest) -> EmailMultiAlternatives:
    assert digest.subscriber is not None
    return build_email("digest", digest.subscriber, digest_context(digest), transactional=False)
