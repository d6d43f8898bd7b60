from django.db import migrations, models
from django.db.models import F


def date_sends_in_flight(apps, schema_editor):  # type: ignore[no-untyped-def]
    """A digest left ``sending`` before this field existed counts from when it was composed,
    as ``interrupted`` counted until now."""
    Digest = apps.get_model("newsletter", "Digest")
    Digest.objects.filter(status="sending").update(handed_off_at=F("created"))


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0008_consent_on_resubscribe"),
    ]

    operations = [
        migrations.AddField(
            model_name="digest",
            name="handed_off_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(date_sends_in_flight, migrations.RunPython.noop),
    ]
