"""Benchmarks: this library against the official ``twelvelabs`` SDK and a raw aiohttp loop.

Run everything with ``python -m benchmarks`` (or ``nox -s bench``); it writes
``benchmarks/results.md`` and ``benchmarks/results.json``. ``--quick`` runs a tiny version,
``--scenario X`` a single scenario, ``--no-sdk`` skips the official SDK's columns.

Every client measurement runs in a fresh subprocess (so import state and peak RSS never leak
between clients) against the fake TwelveLabs server running in another process
(``benchmarks._fake``: the ``python -m twelvelabs_async.testing`` server plus a control pipe
that seeds tasks and reads the server's request counters). Nothing here runs in the test suite.
"""
