"""``output.chunks``: every request's body pieces with their arrival times, as JSON lines.

Each worker streams one line per finished request to its own part file (a
64 KiB buffer, nothing kept after the line is written); the parent
concatenates the parts in worker order at the end, as it does the CSV. A
line holds the request (worker, number, phase, kind, times, status, error)
and the pieces its transport handed to the ``TimedReceiver``: ``[t_ms,
bytes, tokens]``, ``t_ms`` from the run's common start, ``tokens`` the
content events the piece completed (0 outside an SSE stream). See
docs/profiles.md (``output``) for the exact format.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from bench.engine.workers.responses import ResponseFacts


class ChunkLog:
    """One worker's part file of ``output.chunks``."""

    __slots__ = ("file", "worker", "start_ns", "lines")

    def __init__(self, path: str, worker: int, start_ns: int = 0) -> None:
        self.file: BinaryIO = open(path, "wb", buffering=1 << 16)
        self.worker = worker
        self.start_ns = start_ns  # set again at the common start
        self.lines = 0

    def write(
        self,
        phase: str,
        kind: str | None,
        intended_ns: int,
        sent_ns: int,
        end_ns: int,
        status: int | None,
        error: str | None,
        receiver: Any,
        facts: ResponseFacts | None,
    ) -> None:
        """The line of one finished request (failed ones too: what arrived before the failure)."""
        start = self.start_ns
        self.lines += 1
        if receiver is not None:
            chunks = receiver.pieces(start)
            stream, nbytes, tokens, dropped = receiver.stream is not None, receiver.total_bytes, receiver.total_tokens, receiver.dropped
        else:
            chunks, stream, nbytes, tokens, dropped = [], False, 0, 0, 0
        line = {
            "worker": self.worker,
            "request": self.lines,
            "phase": phase,
            "kind": kind,
            "stream": stream,
            "intended_ms": round((intended_ns - start) / 1e6, 3),
            "sent_ms": round((sent_ns - start) / 1e6, 3),
            "end_ms": round((end_ns - start) / 1e6, 3),
            "status": status,
            "error": error or ("check" if facts is not None and facts.check_failed is not None else None),
            "bytes": nbytes,
            "tokens": tokens,
            "output_tokens": facts.output_tokens if facts is not None else None,
            "dropped": dropped,
            "chunks": chunks,
        }
        self.file.write(orjson.dumps(line) + b"\n")

    def close(self) -> None:
        self.file.close()


def merge_chunk_parts(path: Path, parts: list[Path]) -> None:
    """Concatenate the workers' part files, in worker order, into ``path``; then delete them."""
    with open(path, "wb") as out:
        for part in parts:
            if part.exists():
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out)
                part.unlink()
