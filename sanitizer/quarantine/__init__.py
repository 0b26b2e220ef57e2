"""Quarantine zones, lossless moves and the SQL ledger.

Modules (the CLI in :mod:`.cli` is a thin layer over them):

* :mod:`.store` — zones under one fsspec root, hashing, verified copies, safe names
* :mod:`.ledger` — batches and the append-only event table (SQLAlchemy), migrations
* :mod:`.moves` — copy → verify → record → remove; :class:`~.moves.Workspace`
* :mod:`.runner` — ``discover``, ``process_batch``, ``run_dataset`` (what DAG tasks call)
* :mod:`.review` — ``release_batch``, ``reject_batch``, ``list_batches``, ``show_batch``
* :mod:`.reconcile` — ``reconcile`` after a crash

See ``docs/quarantine.md``.
"""
