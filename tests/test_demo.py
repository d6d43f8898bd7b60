"""`make demo`'s zero-setup stack, end to end: SQLite, the file-system broker and a real Celery
worker, with none of CI's services configured. Everything else runs on PostgreSQL and Redis;
this keeps the demo's SQLite path (raw SQL in compose included) from rotting unseen."""

import email
import email.policy
import os
import subprocess
import sys
from pathlib import Path

from devtools.harness import running_worker

ROOT = Path(__file__).resolve().parent.parent
SERVICES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "EMAIL_BACKEND",
    "DJANGO_SETTINGS_MODULE",
)


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_demo_sends_each_reader_a_digest_on_sqlite_and_the_file_system_broker(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env["PAPERBOY_VAR_DIR"] = str(tmp_path)
    for step in (["migrate", "--no-input"], ["load_demo_papers"]):
        done = manage(env, *step)
        assert done.returncode == 0, done.stderr[-3000:]
    with running_worker(env, tmp_path / "worker.log", "--concurrency=1"):
        done = manage(env, "demo_round", "--timeout", "240")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert (tmp_path / "paperboy.sqlite3").exists()

    outbox = sorted((tmp_path / "outbox").glob("*.eml"))
    readers = set()
    for path in outbox:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        readers.add(str(message["To"]))
        text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "1. " in text and "/digest/" in text and message["List-Unsubscribe"]
    assert readers == {
        "graphs@demo.paperboy",
        "pixels@demo.paperboy",
        "llm@demo.paperboy",
        "edge@demo.paperboy",
    }
    assert str(tmp_path / "outbox") in done.stdout
