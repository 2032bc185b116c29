"""Which code produced a result: recorded with every score so a table can name its commit.

Read once, when the package is first imported: a long run keeps the code it started with even
if the checkout moves on meanwhile, so a later `git rev-parse` would name the wrong commit.
"""
import importlib.metadata
import os
import subprocess


PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(PACKAGE_DIR)


def _git(*args):
    try:  # --no-optional-locks: many runs starting at once must not block the user's git
        result = subprocess.run(["git", "--no-optional-locks", *args], cwd=CHECKOUT,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _package_version():
    try:
        return importlib.metadata.version("compare_ssgan")
    except importlib.metadata.PackageNotFoundError:  # imported from a checkout, not installed
        return None


def _describe():
    # Only this checkout's own repository: an installed copy inside some other repository
    # (e.g. a virtualenv in a project) must not report that project's commit.
    top = _git("rev-parse", "--show-toplevel")
    commit = _git("rev-parse", "HEAD") if top and os.path.realpath(top) == os.path.realpath(CHECKOUT) else None
    # Edited or new files of the package or the gin configs: the commit alone does not reproduce it.
    changed = _git("status", "--porcelain", "--", "compare_ssgan", "gin") if commit else None
    return {"package": _package_version(), "git_commit": commit,
            "git_dirty": bool(changed) if commit else None}


CODE_VERSION = _describe()


def describe_short(version=None):
    """'0.1.0@94c07d1' (+ '-dirty'); the package version alone outside a git checkout."""
    version = version or CODE_VERSION
    if not version.get("git_commit"):
        return version.get("package") or "unknown"
    return f"{version.get('package') or 'compare_ssgan'}@{version['git_commit'][:7]}" + ("-dirty" if version.get("git_dirty") else "")
