"""`make demo` and `make serve`: the site, a Celery worker and beat in one terminal.

The worker and beat run in process groups of their own, so Ctrl-C in the terminal reaches
this command alone; it then stops them (SIGTERM, SIGKILL after a grace period) and says so in
one line. Their output goes to files under var/log/.
"""

import contextlib
import ctypes
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.servers.basehttp import (
    ThreadedWSGIServer,
    WSGIRequestHandler,
    get_internal_wsgi_application,
)

# What the worker and beat get between SIGTERM and SIGKILL: Ctrl-C ends it all within 10 s.
GRACE_SECONDS = 6.0


class Command(BaseCommand):
    help = (
        "Serve the site with a Celery worker and beat until Ctrl-C. With --demo, first set "
        "up the database, import the demo papers and send the demo readers a round of digests."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--addr", default="127.0.0.1")
        parser.add_argument("--demo", action="store_true", help="set up and send a demo round")

    def handle(self, *args: Any, **options: Any) -> None:
        # The port first: taken, it is the one line said, before any work.
        server = bind(options["addr"], options["port"])
        signal.signal(signal.SIGTERM, interrupt)
        logs = Path(settings.VAR_DIR) / "log"
        logs.mkdir(parents=True, exist_ok=True)
        try:
            with background(logs) as start:
                if options["demo"]:
                    self.stdout.write("Setting up the database and the demo papers...")
                    call_command("migrate", interactive=False, verbosity=0)
                    call_command("load_demo_papers", stdout=self.stdout)
                start("worker", "--loglevel=WARNING", "--concurrency=2")
                if options["demo"]:
                    call_command("demo_round", stdout=self.stdout)
                start("beat", "--loglevel=WARNING")
                self.stdout.write(
                    f"Serving {settings.SITE_URL}/ (admin: /admin/; worker and beat log to "
                    f"{logs}/). Ctrl-C stops everything."
                )
                server.set_app(StaticFilesHandler(get_internal_wsgi_application()))
                server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        self.stdout.write("Stopped the site, the worker and beat.")


def bind(addr: str, port: int) -> ThreadedWSGIServer:
    try:
        return ThreadedWSGIServer((addr, port), WSGIRequestHandler)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise CommandError(
                f"Port {port} is taken: stop what listens there, or choose another "
                f"(make demo PORT={port + 1})."
            ) from None
        raise CommandError(f"Cannot listen on {addr}:{port}: {exc.strerror}") from None


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM ends the command the way Ctrl-C does."""
    raise KeyboardInterrupt


@contextlib.contextmanager
def background(logs: Path) -> Iterator[Any]:
    """Yield ``start(name, *options)``, which runs ``celery <name>`` with its output in
    ``logs/<name>.log``; on leaving, stop every process started."""
    running: list[subprocess.Popen[bytes]] = []

    def start(name: str, *options: str) -> None:
        with (logs / f"{name}.log").open("ab") as log:
            running.append(
                subprocess.Popen(
                    [sys.executable, "-m", "celery", "-A", "config", name, *options],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,  # the terminal's Ctrl-C is ours to handle, not theirs
                    preexec_fn=die_with_parent,
                )
            )

    try:
        yield start
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        stop(running)


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    alive = [p for p in processes if p.poll() is None]
    for process in alive:
        process.terminate()  # Celery's warm shutdown
    deadline = time.monotonic() + GRACE_SECONDS
    for process in alive:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
    for process in processes:  # the group: a worker's pool processes too
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if this command dies without stopping it (SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
