import re
import unicodedata
from typing import Any
from zoneinfo import available_timezones

from django import forms
from django.core.exceptions import ValidationError

from newsletter.models import Subscriber
from papers.models import Topic
from papers.sources import canonical_arxiv_id

# The consent text shown next to the checkbox. Change the version whenever the text changes:
# consent records keep the version a subscriber agreed to.
CONSENT_VERSION = "2026-11-v1"
CONSENT_TEXT = (
    "Send me the Paperboy digest at the address above. I can unsubscribe in one click "
    "from any email, and download or delete my data from the manage page."
)
MAX_KEYWORDS = 20
MAX_KEYWORD_LENGTH = 100
MAX_LIKED = 20
TIME_ZONES = available_timezones()
RELEVANCE_CHOICES = [
    ("0.0", "Only what matches my interests"),
    ("0.2", "Mostly my interests, a little of what's trending"),
    ("0.5", "Half and half"),
    ("0.8", "Mostly what's trending"),
]
HOURS = [(h, f"{h:02d}:00") for h in range(24)]


def split_terms(text: str) -> list[str]:
    """Keywords as typed: separated by commas or new lines; "quoted phrases" stay whole."""
    quoted = re.findall(r'"([^"]+)"', text)
    rest = re.sub(r'"[^"]*"', ",", text)
    terms = quoted + re.split(r"[,;\n]+", rest)
    cleaned = [" ".join(t.split()) for t in terms]
    return list(dict.fromkeys(t for t in cleaned if t))


def clean_terms(text: str) -> list[str]:
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise ValidationError("Please use plain text only.")
    terms = split_terms(text)
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


class PreferencesForm(forms.Form):
    """Everything a subscriber can choose; the signup form adds the address and consent."""

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
        max_length=2000,
        widget=forms.TextInput(
            attrs={"placeholder": "2503.12345, https://arxiv.org/abs/2402.00001"}
        ),
        help_text="arXiv ids or links, separated by commas.",
    )
    frequency = forms.ChoiceField(choices=Subscriber.Frequency.choices, initial="daily")
    weekday = forms.TypedChoiceField(
        choices=Subscriber.Weekday.choices, coerce=int, initial=0, label="Day (weekly)"
    )
    send_hour = forms.TypedChoiceField(choices=HOURS, coerce=int, initial=8, label="Hour")
    timezone = forms.CharField(max_length=64, initial="UTC", label="Time zone")

    def clean_keywords(self) -> list[str]:
        return clean_terms(self.cleaned_data["keywords"])

    def clean_liked(self) -> list[str]:
        ids = []
        for ref in split_terms(self.cleaned_data["liked"].replace(" ", ",")):
            arxiv_id = canonical_arxiv_id(ref)
            if not arxiv_id:
                raise ValidationError(f"“{ref[:40]}” is not an arXiv id or link.")
            ids.append(arxiv_id)
        if len(ids) > MAX_LIKED:
            raise ValidationError(f"Up to {MAX_LIKED} papers, please.")
        return list(dict.fromkeys(ids))

    def clean_timezone(self) -> str:
        zone = self.cleaned_data["timezone"].strip()
        if zone not in TIME_ZONES:
            raise ValidationError(f"“{zone[:40]}” is not a time zone we know, e.g. Europe/Paris.")
        return zone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and not (data.get("topics") or data.get("keywords")):
            raise ValidationError("Pick a topic or type a keyword, so we know what to send you.")
        return data


class SignupForm(PreferencesForm):
    email = forms.EmailField(max_length=254, label="Email")
    consent = forms.BooleanField(label=CONSENT_TEXT)
    # A field people never see: bots fill it in.
    website = forms.CharField(required=False, label="Leave this empty")

    field_order = [
        "email",
        "topics",
        "keywords",
        "liked",
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
    excluded_keywords = forms.CharField(
        label="Never send papers about",
        required=False,
        max_length=2500,
        widget=forms.Textarea(attrs={"rows": 2}),
    )
    digest_size = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in (3, 5, 10, 15, 20, 30)],
        coerce=int,
        initial=10,
        label="Papers per digest",
    )
    trending_weight = forms.TypedChoiceField(
        choices=RELEVANCE_CHOICES, coerce=float, initial="0.2", label="What to favour"
    )

    def clean_excluded_keywords(self) -> list[str]:
        return clean_terms(self.cleaned_data["excluded_keywords"])

    @classmethod
    def for_subscriber(cls, subscriber: Subscriber) -> "ManageForm":
        weight = min(RELEVANCE_CHOICES, key=lambda c: abs(float(c[0]) - subscriber.trending_weight))
        return cls(
            initial={
                "topics": list(subscriber.topics.all()),
                "keywords": ", ".join(f'"{k}"' if "," in k else k for k in subscriber.keywords),
                "liked": ", ".join(subscriber.liked_refs),
                "frequency": subscriber.frequency,
                "weekday": subscriber.weekday,
                "send_hour": subscriber.send_hour,
                "timezone": subscriber.timezone,
                "excluded_keywords": ", ".join(subscriber.excluded_keywords),
                "digest_size": subscriber.digest_size,
                "trending_weight": weight[0],
            }
        )
