from django.contrib import admin

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


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin[ImportRun]):
    list_display = ("started", "finished", "new", "updated", "unchanged", "invalid")
    readonly_fields = [f.name for f in ImportRun._meta.fields]


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin[Topic]):
    list_display = ("name", "slug")
    search_fields = ("name", "description")
    prepopulated_fields = {"slug": ("name",)}
