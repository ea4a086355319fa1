"""Claim holders: this process names itself, and a recorded holder is running, gone, or on another host."""

from __future__ import annotations

import socket
import subprocess
import sys

from digest.owner import Holder, holder_state, this_process


def finished_process() -> str:
    """The name a process that has exited had (its pid is free again)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    return f"{socket.gethostname()}:{child.stdout.strip()}:-"


def test_this_process_is_running():
    assert holder_state(this_process()) == Holder.RUNNING


def test_a_process_that_exited_is_gone():
    assert holder_state(finished_process()) == Holder.GONE


def test_a_pid_now_used_by_another_process_is_gone():
    host, pid, start = this_process().split(":")
    assert start != "-"  # Linux: the start time is known
    assert holder_state(f"{host}:{pid}:{int(start) + 1}") == Holder.GONE


def test_a_holder_on_another_host_or_none_cannot_be_told():
    assert holder_state("elsewhere.example:1:1") == Holder.ELSEWHERE
    assert holder_state(None) == Holder.ELSEWHERE and holder_state("garbage") == Holder.ELSEWHERE
