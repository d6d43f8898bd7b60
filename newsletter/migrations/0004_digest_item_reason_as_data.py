"""A digest item's reason becomes data (``why``) and the item names its section.

Items from before keep their words; the votes and "trending" that ranking used to join on
(" · 212 upvotes, +40 today", " · trending, 3 upvotes", or the fallback's "trending") move
out of the words into the data, so templates never search a reason's text.
"""

import re

from django.db import migrations, models

# What ranking joined on after " · ", or said alone: votes, "trending", both.
SIGNAL = re.compile(r"(trending|\d+ upvotes?|\+\d+ today)(, .*)?")


def split_old_reasons(apps, schema_editor):  # type: ignore[no-untyped-def]
    DigestItem = apps.get_model("newsletter", "DigestItem")
    changed = []
    for item in DigestItem.objects.filter(why={}).iterator(chunk_size=2000):
        text, _, signal = item.reason.rpartition(" · ")
        if not SIGNAL.fullmatch(signal):  # no votes joined on (a title may hold a " · ")
            text, signal = item.reason, ""
        if SIGNAL.fullmatch(text):  # votes or "trending" alone
            text, signal = "", text
        trending = signal.startswith("trending")
        if item.reason == "trending":  # the fallback when nothing matched
            item.section = "trending"
        item.reason = text or ("trending" if trending else "")
        item.why = {
            "signal": "" if text else "trending",
            "matched": [],
            "text": item.reason,
            "trending": trending,
        }
        changed.append(item)
        if len(changed) == 2000:
            DigestItem.objects.bulk_update(changed, ["reason", "why", "section"])
            changed = []
    DigestItem.objects.bulk_update(changed, ["reason", "why", "section"])


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0003_tracking"),
    ]

    operations = [
        migrations.AddField(
            model_name="digestitem",
            name="section",
            field=models.CharField(
                choices=[
                    ("authors", "By authors they follow"),
                    ("match", "Matches their interests"),
                    ("trending", "Trending"),
                ],
                default="match",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="digestitem",
            name="why",
            field=models.JSONField(blank=True, default=dict),
        ),
        migrations.RunPython(split_old_reasons, migrations.RunPython.noop),
    ]
