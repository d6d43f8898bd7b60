from django.contrib import admin
from django.db import models

from papers.models import ImportRun, Paper, PaperSnapshot, Topic


class SnapshotInline(admin.TabularInline[PaperSnapshot, Paper]):
    model = PaperSnapshot
    extra = 0
    can_delete = False
    readonly_fields = ("taken_at", "upvotes", "comments", "github_stars")


@admin.register(Paper)
class PaperAdmin(admin.ModelAdmin[Paper]):
    list_display = ("title", "arxiv_id", "listed_on", "upvotes", "comments", "source")
    list_filter = ("source", "listed_on")
    search_fields = ("title", "arxiv_id", "authors")
    date_hierarchy = "listed_on"
    readonly_fields = ("created", "updated")
    inlines = [SnapshotInline]
    # A link typed without a scheme is https (Django 6's default; 5.2 warns until told).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin[ImportRun]):
    list_display = ("started", "finished", "new", "updated", "unchanged", "invalid")
    readonly_fields = [f.name for f in ImportRun._meta.fields]


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin[Topic]):
    list_display = ("name", "slug")
    search_fields = ("name", "description")
    prepopulated_fields = {"slug": ("name",)}
