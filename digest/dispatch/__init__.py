"""The daily run: claim due subscribers, pick and compose their digests, send, record, move their next send
time. ``leases`` (who is due, the claim, the schedule's only writer after a send), ``batch`` (a chunk of
digests sent at most once), ``run`` (the dispatch job and ``digest send``, in chunks, on every core)."""

from digest.dispatch.batch import Phases, send_chunk, send_digest
from digest.dispatch.leases import DEFAULT_LEASE, Claim, Due
from digest.dispatch.run import CHUNK, BatchReport, Dispatcher, DispatchReport, Queue, send_many

__all__ = [
    "CHUNK",
    "DEFAULT_LEASE",
    "BatchReport",
    "Claim",
    "DispatchReport",
    "Dispatcher",
    "Due",
    "Phases",
    "Queue",
    "send_chunk",
    "send_digest",
    "send_many",
]
