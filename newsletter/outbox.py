"""An email backend for development: each message becomes one ``.eml`` file in the outbox,
which any mail client opens. (Django's file backend appends a whole connection to one log.)"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone
from django.utils.crypto import get_random_string


class EmlOutboxBackend(BaseEmailBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outbox = Path(settings.EMAIL_FILE_PATH)

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        self.outbox.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            recipient = re.sub(r"[^\w.@-]", "_", ",".join(message.to))[:80]
            stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
            path = self.outbox / f"{stamp}-{recipient}-{get_random_string(6)}.eml"
            path.write_bytes(message.message().as_bytes())
        return len(email_messages)
