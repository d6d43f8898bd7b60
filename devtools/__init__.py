"""Development-only tooling beside the product apps: the digest benchmark (``bench_digests``),
the fault injection (``chaos``) and the harness they share with the tests. An app only when
``settings.DEVTOOLS`` is on (by default with ``DEBUG``); never copied into the production
image, which installs none of its dependencies (aiosmtpd)."""
