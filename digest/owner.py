"""Who holds a claim: this process named as ``host:pid:start``, and whether a recorded holder still runs.

A lease or a ``sending`` ledger row records its holder, so an operator can tell a claim whose process is
gone (killed mid-send) from one being worked on right now. The start time (Linux: field 22 of
``/proc/<pid>/stat``, clock ticks since boot) tells a reused pid from the original process; read directly,
as psutil would be a new compiled dependency for this one number. Elsewhere the pid alone is checked.
"""

from __future__ import annotations

import enum
import os
import socket
from functools import cache
from pathlib import Path


class Holder(enum.StrEnum):
    RUNNING = "running"  # the holder runs on this host
    GONE = "gone"  # it ran on this host and does not any more
    ELSEWHERE = "elsewhere"  # another host (or no holder recorded): cannot tell from here


def this_process() -> str:
    """This process's name for claims; computed per pid, so a forked worker names itself."""
    return _name(os.getpid())


@cache
def _name(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '-'}"


def holder_state(owner: str | None) -> Holder:
    """Whether the process named ``owner`` (``this_process()`` of the claimant) still runs."""
    parts = (owner or "").rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return Holder.ELSEWHERE
    pid, start = int(parts[1]), parts[2]
    if not _alive(pid):
        return Holder.GONE
    fields = _stat(pid)
    if fields and (fields[0] == "Z" or (start != "-" and fields[19] != start)):
        return Holder.GONE  # a zombie (killed, not yet reaped), or the pid now names another process
    return Holder.RUNNING


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if fields else ""


def _stat(pid: int) -> list[str]:
    """Fields 3… of ``/proc/<pid>/stat`` (state, ppid, … starttime at index 19); [] where unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return []
    # The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields if len(fields) > 19 else []
