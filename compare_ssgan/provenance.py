"""Which code produced a result: recorded with every score so a table can name its commit.

Read once, when the package is first imported: a long run keeps the code it started with even
if the checkout moves on meanwhile, so a later `git rev-parse` would name the wrong commit.
"""
import importlib.metadata
import os
import subprocess


def _git(*args):
    try:
        result = subprocess.run(["git", *args], cwd=os.path.dirname(os.path.abspath(__file__)),
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
    commit = _git("rev-parse", "HEAD")
    changed = _git("status", "--porcelain", "--untracked-files=no", "--", ".") if commit else None
    return {"package": _package_version(), "git_commit": commit,
            # Tracked package files edited since that commit: the commit alone does not reproduce it.
            "git_dirty": bool(changed) if commit else None}


CODE_VERSION = _describe()


def describe_short(version=None):
    """'0.1.0@94c07d1' (+ '-dirty'); the package version alone outside a git checkout."""
    version = version or CODE_VERSION
    if not version.get("git_commit"):
        return version.get("package") or "unknown"
    return f"{version.get('package') or 'compare_ssgan'}@{version['git_commit'][:7]}" + ("-dirty" if version.get("git_dirty") else "")
