"""Small builders for realistic payloads, shaped like the real sources (see shared/SOURCES.md)."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def hf_item(
    arxiv_id: str = "2503.12345",
    title: str = "Scaling Diffusion Transformers for Video",
    summary: str = "We scale diffusion transformers to long videos.",
    upvotes: int | None = 42,
    comments: int | None = 3,
    day: str = "2026-11-20",
    **paper: Any,
) -> dict[str, Any]:
    """One item of the Daily Papers API: the outer listing wrapping the nested ``paper``."""
    inner: dict[str, Any] = {
        "id": arxiv_id,
        "title": title,
        "summary": summary,
        "authors": [
            {"name": "Ada Lovelace", "hidden": False},
            {"name": "Alan Turing", "hidden": False},
        ],
        "publishedAt": f"{day}T17:59:01.000Z",
        "submittedOnDailyAt": f"{day}T01:12:00.000Z",
        "upvotes": upvotes,
        "discussionId": "67d0aa11",
        "ai_summary": "",
        "ai_keywords": ["diffusion", "video"],
        "githubRepo": None,
        "githubStars": None,
        "projectPage": None,
        "withdrawnAt": None,
    }
    inner.update(paper)
    return {
        "paper": inner,
        "title": title,
        "summary": summary,
        "thumbnail": f"https://cdn-thumbnails.huggingface.co/social-thumbnails/papers/{arxiv_id}.png",
        "numComments": comments,
        "publishedAt": f"{day}T01:12:00.000Z",
        "submittedBy": {"user": "akhaliq", "fullname": "AK"},
        "organization": None,
        "isAuthorParticipating": False,
        "mediaUrls": [],
    }


def hf_json(*items: dict[str, Any]) -> str:
    return json.dumps(list(items))


Answer = tuple[int, str, str] | tuple[int, str, str, dict[str, str]]


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived


@contextmanager
def http_server(
    respond: Callable[[str, int], Answer], seen: list[Request] | None = None
) -> Iterator[str]:
    """A real HTTP server on loopback. ``respond(path, nth_request) -> (status, type, body)``,
    optionally with a dict of extra headers; ``seen`` collects the requests."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            if seen is not None:
                seen.append(Request(self.path, dict(self.headers), time.monotonic()))
            status, content_type, body, *extra = respond(self.path, len(hits))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (extra[0] if extra else {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def active_subscriber(email: str, keywords: list[str], **fields: Any) -> Any:
    """An active subscriber, due now, interested in ``keywords``."""
    from datetime import timedelta

    from django.utils import timezone

    from newsletter.models import Subscriber

    interests = {name: fields.pop(name) for name in PROFILE_FIELDS if name in fields}
    defaults: dict[str, Any] = {
        "status": Subscriber.Status.ACTIVE,
        "confirmed_at": timezone.now(),
        "next_digest_at": timezone.now() - timedelta(minutes=1),
        "digest_size": 5,
    }
    subscriber = Subscriber.objects.create(email=email, **(defaults | fields))
    add_profile(subscriber, keywords=keywords, **interests)
    return subscriber


PROFILE_FIELDS = (
    "about",
    "excluded_keywords",
    "authors",
    "trending_weight",
    "liked",
    "name",
    "topics",
)


def add_profile(subscriber: Any, liked: list[str] = (), **fields: Any) -> Any:  # type: ignore[assignment]
    """Another interest profile for ``subscriber`` (the next slot), liking ``liked`` (REFs)."""
    from newsletter.forms import LikedPaper
    from newsletter.models import InterestProfile, ProfilePaper
    from newsletter.subscriptions import set_papers
    from papers.models import Paper
    from papers.refs import parse_ref

    topics = fields.pop("topics", [])
    slot = subscriber.profiles.count() + 1
    profile = InterestProfile.objects.create(subscriber=subscriber, slot=slot, **fields)
    profile.topics.set(topics)
    refs = [parse_ref(r) for r in liked]
    found = Paper.objects.for_refs(refs)
    set_papers(profile, ProfilePaper.LIKED, [LikedPaper(r, found.get(r)) for r in refs])
    return profile
