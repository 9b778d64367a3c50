"""Uplink: the store's outbox to the agency endpoint over HTTPS with mutual TLS.

One worker thread (:meth:`Uplink.run`) loops over :meth:`Uplink.step`. Each step asks the outbox
for a batch (alerts first, then the oldest reads), posts every alert on its own request to
``/v1/alerts``, then the reads as one gzip JSON batch to ``/v1/reads``. The server acknowledges
per id; only acknowledged items are marked sent, so a half-accepted batch is retried for the
rest only, and a retry of an item the server already holds is acknowledged again without being
stored twice (the server deduplicates by id). Wire format: docs/uplink.md.

Pacing:

* failures back off exponentially with jitter (``backoff_initial_s`` .. ``backoff_max_s``);
  an alert wakes the worker (:meth:`Uplink.send_alert_now`) and is tried at once, even during a
  backoff, at most every ``alert_retry_min_s``;
* reads are paced by a token bucket at ``drain_rate_per_s`` so a backlog drains at a steady
  rate that leaves airtime for alerts and live reads, and batches shrink when the link is
  ``degraded`` or ``down`` so an alert never waits behind a long transfer;
* a daily byte budget (``daily_bytes_cap``) stops reads once spent; alerts are exempt (but
  counted); images are only requested while less than ``image_budget_fraction`` is spent.

Stopping: :meth:`run` checks ``stop_event`` between requests. The request in flight finishes or
times out (``timeout_s``); its acknowledged items are marked, the rest stay in the outbox. Nothing
is ever marked sent without an acknowledgement, so a SIGTERM cannot lose a read.

Modules: :mod:`.settings` (the ``[uplink]`` keys), :mod:`.transport` (HTTPS with mutual TLS,
the :class:`~.transport.Transport` seam, the uplink's errors), :mod:`.wire` (batch and
acknowledgement format), :mod:`.pacing` (token bucket, daily byte budget, and the pure
:func:`~.pacing.plan` that decides whether a step may send), :mod:`.worker` (the
:class:`~.worker.Uplink` worker thread and its alert lane).
"""
