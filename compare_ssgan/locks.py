"""An exclusive lock file naming its holder (flock: the kernel releases it when the holder dies,
even by kill -9). Used for one sweep per --out and one trainer per model_dir."""
import fcntl
import os
import socket


class Held(Exception):
    """Another process holds the lock; the message names it ("pid N on host")."""


def acquire(path):
    """Locks `path`; returns (open file to keep while holding, None) or, on a filesystem without
    flock (some NFS/Lustre mounts), (file, the OSError): nothing is guarded then."""
    f = open(path, "a+")
    unsupported = None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise Held(holder) from None
    except OSError as e:
        unsupported = e
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    return f, unsupported


def holder_alive(path):
    """Whether the holder last named in lock file `path` is a live process: True/False on this
    host, None when unknown (no holder named, or another host). Reads only: probing with flock
    could make a trainer starting at that moment fail to get the lock."""
    try:
        with open(path) as f:
            words = f.read().split()
    except OSError:
        return None
    if len(words) != 4 or words[0] != "pid" or words[3] != socket.gethostname() or not words[1].isdigit():
        return None
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
