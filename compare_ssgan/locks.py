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
