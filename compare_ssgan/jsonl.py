"""JSON-lines files (scores.jsonl, results.jsonl) that a damaged tail cannot falsify.

A short write (a full disk, a killed process) or a hand edit can leave the last line without
its newline. Appending to such a file as-is would glue the next record onto the torn line,
and both would be lost on reading. So an append first looks at the file's last byte and, if it
is not a newline, starts the record with one: the torn line stays torn (and is reported), the
new record stays whole. Reading reports every unreadable line by file and line number.
"""
import contextlib
import errno
import fcntl
import json
import os

from absl import logging


class BadLine(ValueError):
    """A line of a JSON-lines file that is not a JSON object; names the file and line."""


def _ends_with_newline(fd):
    size = os.fstat(fd).st_size
    return size == 0 or os.pread(fd, 1, size - 1) == b"\n"


def append(fd, record):
    """Appends `record` as one line to `fd` (opened O_RDWR | O_APPEND, under a lock) with one
    os.write(), after a newline if the file's tail is torn; fsyncs. Raises OSError on a short
    write (e.g. a full disk)."""
    line = json.dumps(record, allow_nan=False) + "\n"
    if not _ends_with_newline(fd):
        logging.warning("%s did not end with a newline (a torn last line): starting the new record "
                        "on a line of its own.", _name(fd))
        line = "\n" + line
    data = line.encode("utf-8")
    written = os.write(fd, data)
    if written != len(data):  # POSIX: a short write to a regular file means the disk is full
        raise OSError(errno.ENOSPC, f"short write to {_name(fd)} ({written} of {len(data)} bytes): "
                                    f"No space left on device")
    os.fsync(fd)


@contextlib.contextmanager
def _locked(path):
    """An O_APPEND descriptor of `path` (created if missing) under an exclusive flock."""
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def append_to(path, record):
    """Appends `record` to `path` as one line (see `append`), under the file's lock."""
    with _locked(path) as fd:
        append(fd, record)


def append_unique(path, record, key, read_records=None):
    """Appends `record` to `path` unless a record with the same `key(...)` is there; returns True
    if written. The check and the append happen under one exclusive flock on an O_APPEND
    descriptor, so two writers of one file never write a key twice. `read_records(path)` reads
    the existing records (default `read`)."""
    with _locked(path) as fd:
        if any(key(r) == key(record) for r in (read_records or read)(path)):
            return False
        append(fd, record)
    return True


def _name(fd):
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"file descriptor {fd}"


def read(path, strict=False):
    """The JSON objects of `path`, one per non-blank line. An unreadable line is skipped with a
    warning naming the file and line (strict=True: raises BadLine instead)."""
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError(f"a JSON {type(record).__name__}, not an object")
            except ValueError as e:
                why = f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
                message = (f"{path} line {number} is not a JSON record ({why}; it starts "
                           f"{line.strip()[:60]!r})")
                if strict:
                    raise BadLine(message + ". Repair or remove that line.") from None
                logging.warning("%s: ignoring it. A torn line is what a short write (full disk, "
                                "killed process) leaves; the records around it are intact.", message)
                continue
            records.append(record)
    return records
