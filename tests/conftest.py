"""Session fixtures: each distinct smoke training run through the real CLI happens once per test
session, however many tests (in however many files) read it."""
import shutil

import gin
import pytest

from run_helpers import run_cli, smoke_args


class SmokeRuns:
    """`get(gin_file, params, env)` trains `python -m compare_ssgan.main` with the smoke preset into a
    directory of its own the first time a configuration is asked for, and returns
    (model_dir, the CompletedProcess) after that. The directory is shared: a test that writes
    into a run (resumes it, damages it) works on `copy(...)`."""

    def __init__(self, root):
        self.root, self.done = root, {}

    def get(self, gin_file, params=(), env=None):
        key = (gin_file, tuple(params), tuple(sorted((env or {}).items())))
        if key not in self.done:
            model_dir = str(self.root / f"run{len(self.done)}")
            self.done[key] = (model_dir, run_cli(smoke_args(model_dir, gin_file, params=params), env=env))
        return self.done[key]

    def copy(self, gin_file, params=(), to=None):
        """A private, writable copy of the run's model_dir at `to`."""
        model_dir, _ = self.get(gin_file, params)
        shutil.copytree(model_dir, to)
        return str(to)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    return SmokeRuns(tmp_path_factory.mktemp("smoke_runs"))



@pytest.fixture
def clean_gin():
    """A test that binds gin starts and ends with an empty config."""
    gin.clear_config()
    yield
    gin.clear_config()
