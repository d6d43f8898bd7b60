"""A large arXiv announcement feed for the import benchmark (BENCHMARKS.md, "Importing a large
feed"): the published capture's items repeated with new ids and titles, all announced as new.

    python -m devtools.arxiv_feed 20000 > var/feed-20000.xml
"""

import re
import sys
from pathlib import Path
from typing import TextIO

CAPTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/arxiv_rss_cs.LG_2026-05-22.xml"


def write_feed(entries: int, out: TextIO) -> None:
    text = CAPTURE.read_text()
    head = text[: text.index("    <item>")]
    items = re.findall(r"    <item>.*?</item>\n", text, re.S)
    out.write(head)
    for n in range(entries):
        item = re.sub(r"\d{4}\.\d{5}", f"2605.{n:05d}", items[n % len(items)])
        item = re.sub(r"Announce Type: [\w-]+|(?<=<arxiv:announce_type>)[\w-]+", "new", item)
        item = re.sub(r"<title>(.*?)</title>", rf"<title>\1 (part {n})</title>", item, count=1)
        out.write(item)
    out.write("  </channel>\n</rss>\n")


if __name__ == "__main__":
    write_feed(int(sys.argv[1]), sys.stdout)
