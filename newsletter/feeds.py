"""The reader's private Atom feed: the papers of the digests they were sent, newest first
(Django's syndication framework writes the XML)."""

from typing import Any

from django.contrib.syndication.views import Feed
from django.http import HttpRequest
from django.utils.feedgenerator import Atom1Feed
from django.utils.html import escape

from newsletter import emails
from newsletter.models import Digest, DigestItem, Subscriber

ITEMS = 50


class DigestFeed(Feed):  # type: ignore[type-arg]
    feed_type = Atom1Feed

    def get_object(self, request: HttpRequest, subscriber: Subscriber) -> Subscriber:  # type: ignore[override]
        return subscriber

    def title(self, subscriber: Subscriber) -> str:
        return "Your Paperboy picks"

    def subtitle(self, subscriber: Subscriber) -> str:
        return "The papers of your Paperboy digests, with why each was picked."

    def link(self, subscriber: Subscriber) -> str:
        return emails.absolute("/")

    def feed_url(self, subscriber: Subscriber) -> str:
        return emails.feed_url(subscriber)

    def items(self, subscriber: Subscriber) -> list[DigestItem]:
        return list(
            DigestItem.objects.filter(
                digest__subscriber=subscriber, digest__status=Digest.Status.SENT
            )
            .select_related("paper", "digest", "profile")
            .order_by("-digest__sent_at", "rank")[:ITEMS]
        )

    def item_title(self, item: DigestItem) -> str:
        return item.paper.title

    def item_link(self, item: DigestItem) -> str:
        return item.paper.url

    def item_guid(self, item: DigestItem) -> str:
        return f"{emails.absolute('/')}#digest-{item.digest_id}-paper-{item.paper_id}"

    item_guid_is_permalink = False

    def item_description(self, item: DigestItem) -> str:
        paper = item.paper
        summary = emails.one_line(paper.ai_summary, paper.abstract)
        why = f"Why: {item.reason_data.text}"
        if item.profile is not None:
            why += f" (for your profile “{item.profile.name}”)"
        return escape(f"{emails.authors_line(paper.authors)}. {summary} {why}".strip(". "))

    def item_pubdate(self, item: DigestItem) -> Any:
        return item.digest.sent_at

    def item_updateddate(self, item: DigestItem) -> Any:
        return item.digest.sent_at

    def item_author_name(self, item: DigestItem) -> str:
        return emails.authors_line(item.paper.authors)
