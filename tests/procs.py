"""Helpers the process tests share: who are a process's children, is it alive, wait for a condition (from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def children(pid: int) -> list[int]:
    """PIDs whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def descendants(pid: int) -> list[int]:
    """Children, grandchildren, and so on."""
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def niceness(pid: int | str) -> int | None:
    """The nice value of a process, or of a thread as ``"self/task/TID"``; None if it is gone."""
    fields = _stat_fields(pid)
    return int(fields[16]) if fields is not None else None


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (not gone, not a zombie)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def wait_until(condition, timeout: float, step: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def ctrl_c_at(seconds: float):
    """An ``on_progress`` callback for ``bench.run`` that sends this process SIGINT (Ctrl-C) once, ``seconds`` into the run."""
    import signal

    sent: list[float] = []

    def on_progress(snapshot) -> None:
        if snapshot.elapsed_s >= seconds and not sent:
            sent.append(snapshot.elapsed_s)
            os.kill(os.getpid(), signal.SIGINT)

    return on_progress


def first_status_line(stream, limit: int = 20) -> str:
    """Read ``bench run``'s output past its header to the first plain status line ("[bench] ..."): the run has started."""
    line = stream.readline()
    for _ in range(limit):
        if "[bench]" in line or not line:
            break
        line = stream.readline()
    return line
