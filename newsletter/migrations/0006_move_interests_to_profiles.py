"""Every subscriber's interests move into a first profile, "My interests"; the votes, clicks and
digest items they made so far belong to it. Set-based, so it takes seconds for 100,000
subscribers. Backwards, the first profile's interests go back onto the subscriber."""

from django.db import migrations
from django.db.models import OuterRef, Subquery

NAME = "My interests"
BATCH = 2000


def forwards(apps, schema_editor):
    Subscriber = apps.get_model("newsletter", "Subscriber")
    InterestProfile = apps.get_model("newsletter", "InterestProfile")
    ProfilePaper = apps.get_model("newsletter", "ProfilePaper")
    Paper = apps.get_model("papers", "Paper")
    subscribers = Subscriber.objects.order_by("id")
    fields = ("id", "keywords", "excluded_keywords", "trending_weight", "liked_refs")
    for start in range(0, subscribers.count(), BATCH):
        rows = list(subscribers.values(*fields)[start : start + BATCH])
        InterestProfile.objects.bulk_create(
            InterestProfile(
                subscriber_id=row["id"],
                slot=1,
                name=NAME,
                keywords=row["keywords"] or [],
                excluded_keywords=row["excluded_keywords"] or [],
                trending_weight=row["trending_weight"],
            )
            for row in rows
        )
        profiles = dict(
            InterestProfile.objects.filter(subscriber_id__in=[r["id"] for r in rows]).values_list(
                "subscriber_id", "id"
            )
        )
        ids = {ref for row in rows for ref in row["liked_refs"] or []}
        papers = dict(Paper.objects.filter(arxiv_id__in=ids).values_list("arxiv_id", "id"))
        # liked_refs held canonical arXiv ids (the old form accepted nothing else).
        ProfilePaper.objects.bulk_create(
            ProfilePaper(
                profile_id=profiles[row["id"]],
                opinion=1,
                ref=ref,
                arxiv_id=ref,
                paper_id=papers.get(ref),
            )
            for row in rows
            for ref in dict.fromkeys(row["liked_refs"] or [])
            if ref
        )
    topics = Subscriber.topics.through.objects.values_list("subscriber_id", "topic_id")
    first = dict(InterestProfile.objects.values_list("subscriber_id", "id"))
    InterestProfile.topics.through.objects.bulk_create(
        (
            InterestProfile.topics.through(interestprofile_id=first[s], topic_id=t)
            for s, t in topics.iterator()
        ),
        batch_size=BATCH,
    )
    # Liked papers linked to a subscriber without a REF saying so (staff added them).
    named = set(ProfilePaper.objects.values_list("profile_id", "paper_id"))
    ProfilePaper.objects.bulk_create(
        (
            ProfilePaper(
                profile_id=first[s],
                opinion=1,
                ref=arxiv_id or title[:500],
                arxiv_id=arxiv_id or "",
                paper_id=p,
            )
            for s, p, arxiv_id, title in Subscriber.liked_papers.through.objects.values_list(
                "subscriber_id", "paper_id", "paper__arxiv_id", "paper__title"
            ).iterator()
            if (first[s], p) not in named
        ),
        batch_size=BATCH,
        ignore_conflicts=True,
    )
    profile = InterestProfile.objects.filter(subscriber_id=OuterRef("subscriber_id")).values("id")[
        :1
    ]
    apps.get_model("newsletter", "Feedback").objects.update(profile_id=Subquery(profile))
    apps.get_model("newsletter", "Click").objects.update(profile_id=Subquery(profile))
    by_digest = InterestProfile.objects.filter(subscriber__digests=OuterRef("digest_id"))
    apps.get_model("newsletter", "DigestItem").objects.update(
        profile_id=Subquery(by_digest.values("id")[:1])
    )


def backwards(apps, schema_editor):
    Subscriber = apps.get_model("newsletter", "Subscriber")
    InterestProfile = apps.get_model("newsletter", "InterestProfile")
    for profile in InterestProfile.objects.filter(slot=1).prefetch_related("topics", "papers"):
        liked = [p for p in profile.papers.all() if p.opinion == 1]
        Subscriber.objects.filter(id=profile.subscriber_id).update(
            keywords=profile.keywords,
            excluded_keywords=profile.excluded_keywords,
            trending_weight=profile.trending_weight,
            liked_refs=[p.arxiv_id for p in liked if p.arxiv_id],
        )
        subscriber = Subscriber(id=profile.subscriber_id)
        subscriber.topics.set(profile.topics.all())
        subscriber.liked_papers.set([p.paper_id for p in liked if p.paper_id])


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0005_interest_profiles"),
        ("papers", "0003_seed_topics"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
