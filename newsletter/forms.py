import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from newsletter.models import InterestProfile, ProfilePaper, Subscriber, validate_time_zone
from papers.library import MAX_BYTES, MAX_ENTRIES, Entry, LibraryError, read_library
from papers.models import Paper, Topic
from papers.refs import Ref, RefError, parse_ref, split_refs

# The consent text shown next to the checkbox. Change the version whenever the text changes:
# consent records keep the version a subscriber agreed to.
CONSENT_VERSION = "2026-11-v1"
CONSENT_TEXT = (
    "Send me the Paperboy digest at the address above. I can unsubscribe in one click "
    "from any email, and download or delete my data from the manage page."
)
MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100
# Enough to describe a field by the papers that define it; a whole library is an upload.
MAX_LIKED = 100
# Of an uploaded library, the most recent papers become liked ones: past a couple of hundred a
# profile's vector barely moves, while the reasons ("close to ...") and the background fetch of
# the papers the catalogue lacks grow with each one.
MAX_LIBRARY_LIKED = 200
MAX_AUTHORS = 50
MAX_AUTHOR_LENGTH = 100
MAX_ABOUT = InterestProfile.MAX_ABOUT_LENGTH
MAX_ERRORS_SHOWN = 5
RELEVANCE_CHOICES = [
    ("0.0", "Only what matches my interests"),
    ("0.2", "Mostly my interests, a little of what's trending"),
    ("0.5", "Half and half"),
    ("0.8", "Mostly what's trending"),
]
HOURS = [(h, f"{h:02d}:00") for h in range(24)]


# A "quoted phrase" (commas and all), or a run of text up to the next separator.
TERM = re.compile(r'"([^"]*)"|([^",;\n]+)')


def split_terms(text: str) -> list[str]:
    """Keywords as typed, in order: separated by commas, semicolons or new lines; "quoted
    phrases" stay whole (a stray quote mark is dropped)."""
    terms = [" ".join((quoted or plain).split()) for quoted, plain in TERM.findall(text)]
    return list(dict.fromkeys(t for t in terms if t))


def join_terms(terms: list[str]) -> str:
    """Keywords as the form shows them: ``split_terms`` gives back the same list."""
    return ", ".join(f'"{t}"' if re.search(r"[,;]", t) else t for t in terms)


def plain_text(text: str) -> str:
    """``text`` when it holds no control characters (tabs and line breaks aside)."""
    if any((ord(c) < 32 and c not in "\n\r\t") or 127 <= ord(c) < 160 for c in text):
        raise ValidationError("Please use plain text only (no control characters).")
    return text


def clean_terms(text: str) -> list[str]:
    terms = split_terms(plain_text(text))
    if len(terms) > MAX_KEYWORDS:
        raise ValidationError(f"Up to {MAX_KEYWORDS} keywords, please; you typed {len(terms)}.")
    too_long = [t for t in terms if len(t) > MAX_KEYWORD_LENGTH]
    if too_long:
        raise ValidationError(
            f"Keep each keyword under {MAX_KEYWORD_LENGTH} characters "
            f"(“{too_long[0][:30]}…” is {len(too_long[0])})."
        )
    return terms


# A quoted local part as people use it ("a..b"@, ".ada"@): what an unquoted one may hold, dots
# anywhere. Django's validator also lets through control characters and <>,;:@[]"\ inside the
# quotes, which providers refuse and which split or mangle the address downstream.
QUOTED_LOCAL_PART = re.compile(r'"[A-Za-z0-9!#$%&\'*+/=?^_`{|}~.-]+"')
# Control, format (bidi, zero-width), surrogate, private-use and unassigned characters, and
# line or paragraph separators.
UNDELIVERABLE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def check_deliverable(address: str) -> None:
    """Refuse an address Django's ``EmailValidator`` accepts but no mail system delivers."""
    if any(unicodedata.category(c) in UNDELIVERABLE_CATEGORIES for c in address):
        raise ValidationError("An email address can't contain control or invisible characters.")
    local, _, domain = address.rpartition("@")
    if local.startswith('"') and not QUOTED_LOCAL_PART.fullmatch(local):
        raise ValidationError(
            "Between quotes, an address may hold letters, digits and .!#$%&'*+/=?^_`{|}~-"
        )
    try:
        domain.encode("idna")  # as Django's mail sending encodes it
    except UnicodeError:
        raise ValidationError(f"“{domain[:60]}” is not a domain we can send to.") from None


@dataclass(frozen=True)
class LikedPaper:
    """A REF from the form and the catalogue's paper for it (None: not there yet, fetched)."""

    ref: Ref
    paper: Paper | None


def clean_liked(text: str) -> list[LikedPaper]:
    """The papers a reader named, one REF per line (or ids and links separated by commas); every
    mistake is listed, naming the REF. A title must be in the catalogue; an id need not be."""
    given = split_refs(plain_text(text))
    if len(given) > MAX_LIKED:
        raise ValidationError(
            f"Up to {MAX_LIKED} papers, please; you gave {len(given)}. "
            "Keep the ones that describe your work best."
        )
    refs, errors = [], []
    for typed in given:
        try:
            refs.append(parse_ref(typed))
        except RefError as error:
            errors.append(str(error))
    found = Paper.objects.for_refs(refs) if not errors else {}
    errors += [
        f"No paper titled “{ref.title[:80]}” is in our catalogue; give its arXiv id or link."
        for ref in refs
        if ref.title and ref not in found
    ]
    if errors:
        more = len(errors) - MAX_ERRORS_SHOWN
        shown = errors[:MAX_ERRORS_SHOWN] + ([f"…and {more} more."] if more > 0 else [])
        raise ValidationError(shown)
    # The same paper named twice (an id and its link) is liked once.
    unique: dict[object, LikedPaper] = {}
    for ref in refs:
        paper = found.get(ref)
        key = ref.arxiv_id or (paper.arxiv_id or paper.id if paper else ref.given)
        unique.setdefault(key, LikedPaper(ref, paper))
    return list(unique.values())


@dataclass(frozen=True)
class LibraryUpload:
    """An uploaded library, read: its entries, and the liked papers they name (an arXiv id, an
    arXiv DOI, or a title the catalogue holds), at most ``MAX_LIBRARY_LIKED``, newest first."""

    filename: str
    entries: list[Entry]
    liked: list[LikedPaper]
    unmatched: int  # entries neither on arXiv nor in the catalogue

    def summary(self) -> str:
        fetched = sum(1 for c in self.liked if c.paper is None)
        said = [f"{len(self.entries):,} references in {self.filename}"]
        said.append(
            f"{len(self.liked):,} became liked papers"
            + (f" ({fetched:,} being fetched from arXiv)" if fetched else "")
        )
        if self.unmatched:
            said.append(f"{self.unmatched:,} are neither on arXiv nor in our catalogue")
        return "; ".join(said) + "."


def clean_library(upload: Any) -> LibraryUpload | None:
    """Read an uploaded .bib or .ris file; a ``ValidationError`` that says what is wrong."""
    if not upload:
        return None
    name = str(getattr(upload, "name", "") or "library")[:200]
    if upload.size > MAX_BYTES:
        raise ValidationError(
            f"That file is {upload.size / 1024 / 1024:.1f} MB; up to "
            f"{MAX_BYTES // 1024 // 1024} MB, please (export one collection of your library)."
        )
    try:
        entries = read_library(upload.read(), name)
    except LibraryError as error:
        raise ValidationError(str(error)) from None
    refs = {
        index: Ref(f"arXiv:{e.arxiv_id}", arxiv_id=e.arxiv_id)
        if e.arxiv_id
        else Ref(e.title[:500], title=e.title[:500])
        for index, e in enumerate(entries)
    }
    found = Paper.objects.for_refs(refs.values())
    newest_first = sorted(refs, key=lambda i: entries[i].year, reverse=True)
    liked: dict[object, LikedPaper] = {}
    for index in newest_first:
        ref = refs[index]
        paper = found.get(ref)
        if ref.arxiv_id or paper:
            liked.setdefault(ref.arxiv_id or (paper and paper.id), LikedPaper(ref, paper))
    unmatched = len(entries) - sum(1 for ref in refs.values() if ref.arxiv_id or ref in found)
    return LibraryUpload(name, entries, list(liked.values())[:MAX_LIBRARY_LIKED], unmatched)


def clean_authors(text: str) -> list[str]:
    """Followed authors: one per line, or separated by commas or semicolons."""
    names = [" ".join(n.split()) for n in re.split(r"[,;\n]+", plain_text(text))]
    names = list({n.casefold(): n for n in reversed(names) if n}.values())[::-1]
    if len(names) > MAX_AUTHORS:
        raise ValidationError(f"Up to {MAX_AUTHORS} authors, please; you gave {len(names)}.")
    for name in names:
        if len(name) > MAX_AUTHOR_LENGTH:
            raise ValidationError(
                f"“{name[:30]}…” is too long for a name ({len(name)} characters)."
            )
        if not re.search(r"[^\W\d_]", name):
            raise ValidationError(f"“{name[:40]}” is not a name.")
    return names


class PreferencesForm(forms.Form):
    """Everything a subscriber can choose; the signup form adds the address and consent."""

    about = forms.CharField(
        label="What do you work on?",
        required=False,
        max_length=MAX_ABOUT,
        error_messages={
            "max_length": f"Up to {MAX_ABOUT:,} characters, please "
            "(this is %(show_value)d): the gist of your work is enough."
        },
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "e.g. I train small networks to run on microcontrollers with "
                "a few hundred kilobytes of memory.",
            }
        ),
        help_text="In your own words, a sentence or two (optional).",
    )
    topics = forms.ModelMultipleChoiceField(
        queryset=Topic.objects.all(), widget=forms.CheckboxSelectMultiple, required=False
    )
    keywords = forms.CharField(
        required=False,
        max_length=2500,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": 'e.g. "diffusion models", RLHF'}),
        help_text="Separate with commas; put a phrase in quotes or on its own line.",
    )
    liked = forms.CharField(
        label="Papers you like (optional)",
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "placeholder": "2503.12345, https://huggingface.co/papers/2402.00001\n"
                "Attention Is All You Need",
            }
        ),
        help_text="arXiv ids, arXiv / Hugging Face / alphaXiv links or arXiv DOIs, or a "
        "title on its own line.",
    )
    excluded_keywords = forms.CharField(
        label="Never send papers about (optional)",
        required=False,
        max_length=2500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    authors = forms.CharField(
        label="Authors you follow (optional)",
        required=False,
        max_length=6000,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "Song Han; Yann LeCun"}),
        help_text="Their new papers always come, in a part of their own.",
    )
    library = forms.FileField(
        label="Or upload your reference library (optional)",
        required=False,
        widget=forms.ClearableFileInput(attrs={"accept": ".bib,.ris,.txt"}),
        help_text=f"A BibTeX (.bib) or RIS (.ris) export from Zotero, Mendeley or Google "
        f"Scholar, up to {MAX_BYTES // 1024 // 1024} MB and {MAX_ENTRIES:,} references. Its "
        "arXiv papers become papers you like.",
    )
    trending_weight = forms.TypedChoiceField(
        choices=RELEVANCE_CHOICES,
        coerce=float,
        initial="0.2",
        required=False,
        empty_value=InterestProfile._meta.get_field("trending_weight").default,
        label="What to favour",
    )
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, initial="daily")
    weekday = forms.TypedChoiceField(
        choices=Subscriber.Weekday.choices, coerce=int, initial=0, label="Day"
    )
    send_hour = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=8, label="Hour")
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone")

    def clean_keywords(self) -> list[str]:
        return clean_terms(self.cleaned_data["keywords"])

    def clean_about(self) -> str:
        return plain_text(self.cleaned_data["about"]).replace("\r\n", "\n").strip()

    def clean_liked(self) -> list[LikedPaper]:
        return clean_liked(self.cleaned_data["liked"])

    def clean_excluded_keywords(self) -> list[str]:
        return clean_terms(self.cleaned_data["excluded_keywords"])

    def clean_authors(self) -> list[str]:
        return clean_authors(self.cleaned_data["authors"])

    def clean_library(self) -> LibraryUpload | None:
        return clean_library(self.cleaned_data.get("library"))

    def clean_timezone(self) -> str:
        zone: str = self.cleaned_data["timezone"].strip()
        validate_time_zone(zone)  # the model's own check, as the admin applies it
        return zone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        said = ("about", "topics", "keywords", "liked", "authors", "library")
        if not self.errors and not any(data.get(name) for name in said):
            raise ValidationError(
                "Say what you work on, pick a topic, type a keyword, or name a paper or an "
                "author, so we know what to send you."
            )
        return data


class ResubscribeForm(forms.Form):
    consent = forms.BooleanField(
        label="Send me the Paperboy digest again. I can unsubscribe in one click from any "
        "email, and download or delete my data from this page."
    )


class SignupForm(PreferencesForm):
    email = forms.EmailField(max_length=254, label="Email")
    consent = forms.BooleanField(label=CONSENT_TEXT)
    # A field people never see: bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")

    field_order = [
        "email",
        "about",
        "topics",
        "keywords",
        "liked",
        "library",
        "authors",
        "excluded_keywords",
        "trending_weight",
        "frequency",
        "weekday",
        "send_hour",
        "timezone",
        "consent",
        "website",
    ]

    def clean_email(self) -> str:
        address: str = self.cleaned_data["email"].strip().lower()
        check_deliverable(address)
        return address


class ManageForm(PreferencesForm):
    """The manage page's form: the schedule and digest size, and one profile's interests."""

    name = forms.CharField(
        label="Name of this profile",
        max_length=60,
        required=False,
        initial=InterestProfile.DEFAULT_NAME,
        help_text="Each profile has a part of its own in your digest.",
    )
    digest_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in (3, 5, 10, 15, 20, 30)],
        coerce=int,
        initial=10,
        label="Papers per digest",
        help_text="In all: your profiles take turns, best papers first.",
    )

    field_order = ["name"]

    def __init__(self, *args: Any, profile: InterestProfile | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.profile = profile

    def clean(self) -> dict[str, Any]:
        # A profile whose interests are its uploaded library says enough without a new upload.
        if self.profile is not None and hasattr(self.profile, "library"):
            return forms.Form.clean(self) or {}
        return super().clean()

    def clean_name(self) -> str:
        return " ".join(plain_text(self.cleaned_data["name"]).split()) or (
            InterestProfile.DEFAULT_NAME
        )

    @classmethod
    def for_subscriber(
        cls, subscriber: Subscriber, profile: InterestProfile | None = None
    ) -> "ManageForm":
        """The form filled with the subscriber's schedule and ``profile`` (else their first)."""
        profile = profile or subscriber.profiles.first() or InterestProfile()
        weight = min(RELEVANCE_CHOICES, key=lambda c: abs(float(c[0]) - profile.trending_weight))
        # The papers the reader named; those of an uploaded library are shown apart.
        typed = [
            p.ref
            for p in (profile.papers.all() if profile.pk else [])
            if p.opinion == ProfilePaper.LIKED and p.library_id is None
        ]
        return cls(
            profile=profile if profile.pk else None,
            initial={
                "name": profile.name,
                "about": profile.about,
                "topics": list(profile.topics.all()) if profile.pk else [],
                "keywords": join_terms(profile.keywords),
                "liked": "\n".join(typed),
                "excluded_keywords": join_terms(profile.excluded_keywords),
                "authors": "; ".join(profile.authors),
                "frequency": subscriber.frequency,
                "weekday": subscriber.weekday,
                "send_hour": subscriber.send_hour,
                "timezone": subscriber.timezone,
                "digest_size": subscriber.digest_size,
                "trending_weight": weight[0],
            },
        )
