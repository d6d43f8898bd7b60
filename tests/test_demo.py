"""`make demo` as a newcomer runs it: from a fresh copy of the repository, on SQLite and the
file-system broker with a real Celery worker, none of CI's services configured. It must serve
digests whose links lead to the real papers, and stop cleanly on Ctrl-C."""

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.harness import free_port

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent
SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EMAIL_BACKEND", "SITE_URL")
READERS = {f"{name}@demo.paperboy" for name in ("graphs", "pixels", "llm", "edge")}


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's files as a fresh clone has them (no var/), sharing this .venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    copy = tmp_path / "paperboy"
    for name in filter(None, files):
        source, target = ROOT / name.decode(), copy / name.decode()
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    # Every file older than the .venv's install stamp, so make never reinstalls into it.
    stamp = (VENV / ".installed-stamp").stat().st_mtime
    for path in copy.rglob("*"):
        os.utime(path, (stamp - 60, stamp - 60))
    return copy


def make_demo(clone: Path, port: int) -> subprocess.Popen[str]:
    # As typed in a terminal: none of CI's services, and not as a sub-make of `make test`.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SERVICES and not k.startswith(("MAKE", "MFLAGS"))
    }
    return subprocess.Popen(
        ["make", "demo", f"PORT={port}", f"VENV={VENV}"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal of its own: Ctrl-C goes to its process group
        # and Ctrl-C does what it does in a terminal, even when the tests were started in the
        # background (a shell's background job ignores SIGINT, and so would make and Python).
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def wait_until_served(demo: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and demo.poll() is None:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    demo.kill()
    pytest.fail(f"the demo did not serve:\n{demo.communicate()[0][-5000:]}")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def where_it_leads(url: str) -> str:
    try:
        urllib.request.build_opener(NoRedirect).open(url, timeout=10)
    except urllib.error.HTTPError as answer:
        return str(answer.headers["Location"])
    raise AssertionError(f"{url} does not redirect")


def processes_in(directory: Path) -> Iterator[str]:
    """Command lines of the processes running in ``directory`` (Linux /proc)."""
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if Path(os.readlink(proc / "cwd")) == directory:
                yield (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue


def test_make_demo_serves_digests_with_real_links_and_stops_on_ctrl_c_within_ten_seconds(
    clone: Path,
) -> None:
    port = free_port()
    demo = make_demo(clone, port)
    try:
        wait_until_served(demo, port)

        digests = {}
        for path in (clone / "var" / "outbox").glob("*.eml"):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            digests[str(message["To"])] = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert set(digests) == READERS
        text = "\n".join(digests.values())
        links = re.findall(r"https?://\S+", text)
        assert links and all(link.startswith(f"http://localhost:{port}/") for link in links)
        kinds = dict(
            re.findall(r"^ +(PDF|Code|Hugging Face)(?: \([\d,]+ stars?\))?: (\S+)$", text, re.M)
        )
        assert re.fullmatch(r"https://arxiv.org/pdf/\d{4}\.\d{4,5}", where_it_leads(kinds["PDF"]))
        assert where_it_leads(kinds["Code"]).startswith("https://github.com/")
        assert where_it_leads(kinds["Hugging Face"]).startswith("https://huggingface.co/papers/")
        assert re.search(r"· \d+ upvotes", digests["llm@demo.paperboy"])

        os.killpg(demo.pid, signal.SIGINT)  # what Ctrl-C in its terminal does
        started = time.monotonic()
        try:
            output = demo.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            still = "\n".join(processes_in(clone))
            pytest.fail(f"Ctrl-C did not stop the demo in 30 s:\n{demo.communicate()[0]}\n{still}")
        assert time.monotonic() - started < 10
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    lines = output.strip().splitlines()
    assert lines[-1] == "Stopped the site, the worker and beat.", output
    assert len(lines) < 20, output
    for noise in ("Traceback", "No hostname", "Applying", "Warm shutdown", "make: ***"):
        assert noise not in output
    assert not list(processes_in(clone)), "the worker or beat outlived the demo"


def test_make_demo_on_a_taken_port_says_so_in_one_line_before_any_work(clone: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        demo = make_demo(clone, port)
        try:
            output = demo.communicate(timeout=60)[0]
        finally:
            if demo.poll() is None:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()

    assert demo.returncode != 0
    assert output.strip().count("\n") == 0
    assert f"Port {port} is taken" in output
    assert not (clone / "var").exists()
