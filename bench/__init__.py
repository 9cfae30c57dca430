"""``make bench``: the API's throughput against references measured in the same run.

The server runs pinned to one core (``taskset -c 0``), the load generator on the other
(``taskset -c 1``), and the arms are interleaved round by round so that drift (heat,
caches, a growing journal) spreads over every arm instead of favouring one:

- references, all answering the same JSON bytes as the metadata route: C0 nginx serving
  a static file, C1 a bare ASGI app under uvicorn, C2 a bare Starlette route;
- the subject, ``ensu.app:create_app`` as ``ensu serve`` runs it in proxy mode: metadata,
  list, content (PDF) and token endpoints, with the quota counted in SQLite and in Redis.

wrk cannot present a client certificate, so the app runs in proxy mode (plain HTTP on
the loopback, trusting 127.0.0.1) and wrk sends the headers the TLS proxy would:
``X-SSL-Client-Cert`` and ``X-Forwarded-For``. The references receive the very same
headers, so every arm parses the same bytes.

Everything lives in a temporary folder (never ``var/``); all traffic stays on 127.0.0.1;
every run is bounded in time. Results are printed and written to ``bench/results/``.
"""
