"""Results on disk: atomic writes, output folders with a manifest, resumable blocks.

Every file is written to a temporary name in its folder and renamed into place,
so a reader (or an interrupted run) never sees half a file. An output folder
holds ``manifest.json`` with the configuration that produced it; a rerun with a
different configuration is refused unless ``overwrite`` is given.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any

MANIFEST = "manifest.json"


def _publish(tmp: str, path: str) -> None:
    """Gives the temporary file the usual permissions (mkstemp makes it 0600), renames it."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)


def atomic_savefig(save, path: str) -> None:
    """Calls ``save(tmp_path)`` (e.g. a figure's savefig) and renames the result to ``path``;
    on any failure the temporary file is removed and ``path`` is left as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    os.close(fd)
    try:
        save(tmp)
        _publish(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str, payload: bytes) -> None:
    """Writes ``payload`` to ``path`` via a synced temporary file and ``os.replace``."""
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

    atomic_savefig(write, path)


def atomic_write_json(path: str, obj: Any) -> None:
    """``json.dumps(obj, indent=1, sort_keys=True)`` written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def check_out_dir(out: str) -> None:
    """Raises ``ValueError`` if ``out`` cannot become a writable folder; creates nothing."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out: {out!r} exists and is a file; give a folder path")
    probe = out
    while not os.path.exists(probe):
        parent = os.path.dirname(os.path.abspath(probe))
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out: {out!r} is not writable (checked {probe!r}); choose "
                         "another folder")


def open_out_dir(out: str, manifest: dict[str, Any], overwrite: bool) -> bool:
    """Creates or reuses ``out`` for a run described by ``manifest``.

    Returns ``True`` when ``out`` already holds work of the same configuration (resume).

    Raises:
      ValueError: ``out`` holds a different configuration and ``overwrite`` is false.
    """
    check_out_dir(out)
    path = os.path.join(out, MANIFEST)
    if os.path.exists(path):
        with open(path) as f:
            try:
                old = json.load(f)
            except json.JSONDecodeError:
                old = None
        if old == json.loads(json.dumps(manifest, sort_keys=True)):
            return True
        if not overwrite:
            raise ValueError(f"--out: {out!r} holds results of a different configuration; "
                             "pass --overwrite to replace them or choose another folder")
    if overwrite and os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    atomic_write_json(path, manifest)
    return False


def read_json(path: str) -> Any | None:
    """The JSON at ``path``, or ``None`` if it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None
