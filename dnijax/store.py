"""Results on disk: atomic writes, output folders with a manifest, resumable blocks.

Every file is written to a temporary name in its folder and renamed into place,
so a reader (or an interrupted run) never sees half a file. An output folder
holds ``manifest.json`` with the configuration that produced it; every command and
benchmark claims its folder through :func:`claim_out_dir`, so a rerun with a different
configuration is refused unless ``--overwrite`` is given, and nothing is lost by accident.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
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


def atomic_write_json(path: str, obj: Any, sort_keys: bool = True) -> None:
    """``json.dumps(obj, indent=1, sort_keys=sort_keys)`` written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=sort_keys) + "\n").encode())


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
        raise ValueError(
            f"--out: {out!r} is not writable (checked {probe!r}); choose another folder"
        )


def claim_out_dir(
    out: str, manifest: dict[str, Any], overwrite: bool = False, outputs: Sequence[str] = ()
) -> bool:
    """The one rule of every command that writes a folder: ``out`` is used for the run that
    ``manifest`` describes, and nothing in it is replaced by accident.

    * ``out`` holds this configuration's ``manifest.json``: returns ``True`` (resume, or
      rewrite the same results);
    * ``out`` holds another configuration's results (any of ``outputs``, under another
      manifest or none): refused unless ``overwrite``, and nothing is touched; another
      manifest alone (a run stopped before it wrote anything) is replaced;
    * with ``overwrite``, the old manifest and ``outputs`` (files or folders, e.g. a sweep's
      ``blocks``) are removed first; other files in ``out`` are never removed;
    * otherwise ``out`` is created if needed. The manifest is written atomically.

    Call it after every input is validated and before anything is compiled.

    Args:
      out: the output folder.
      manifest: the JSON-able configuration its results belong to.
      overwrite: replace another configuration's results.
      outputs: the names, inside ``out``, of what the command writes.

    Returns:
      Whether ``out`` already held this configuration.

    Raises:
      ValueError: one line, naming ``--overwrite``, when ``out`` holds other results; or
        when ``out`` cannot be a writable folder.
    """
    check_out_dir(out)
    path = os.path.join(out, MANIFEST)
    old = read_json(path) if os.path.exists(path) else None
    if old is not None and old == json.loads(json.dumps(manifest, sort_keys=True)):
        return True
    present = [name for name in outputs if os.path.exists(os.path.join(out, name))]
    if present and not overwrite:  # a manifest alone (a run stopped early) loses nothing
        what = (
            "of a different configuration"
            if os.path.exists(path)
            else (f"not made by this configuration ({', '.join(present[:3])})")
        )
        raise ValueError(
            f"--out: {out!r} holds results {what}; pass --overwrite to replace "
            "them or choose another folder"
        )
    for name in [MANIFEST, *present]:
        target = os.path.join(out, name)
        if os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)
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
