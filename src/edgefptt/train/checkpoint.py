"""Checkpoints and logs written atomically: a crash or Ctrl-C never leaves half a file.

A checkpoint is a ``torch.save`` dictionary with ``format``, ``version`` and a ``checksum``:
the SHA-256 of every tensor in it (its place in the document, dtype, shape and bytes, in a
stable order), verified on load, so that bytes overwritten inside a weight or optimizer tensor
are refused instead of trained on or exported. Loading uses ``weights_only=True``: nothing in
the file can run code.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import pickle
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from edgefptt.errors import CheckpointError, UserInputError

if TYPE_CHECKING:  # torch is imported when a checkpoint is written or read
    import torch

CHECKPOINT_FORMAT = "edgefptt-checkpoint"
CHECKPOINT_VERSION = 1
CHECKSUM_ALGORITHM = "sha256-tensors-v1"
# What a temporary file of atomic_write looks like: ".<target name>.<8 random chars>.tmp".
_TEMPORARY = r"\.{name}\.[A-Za-z0-9_]{{8}}\.tmp"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# The entries each kind of loader reads (see check_entries): a model to export or start from,
# a model to evaluate, a run to resume.
MODEL_ENTRIES = ("config.hidden", "data.input_size", "data.num_outputs", "model")
EVALUATE_ENTRIES = (*MODEL_ENTRIES, "data.seq_len")
RESUME_ENTRIES = (
    *EVALUATE_ENTRIES,
    *("optimizer", "scheduler", "epoch", "next_batch", "partial", "history"),
)


class DiskFullError(UserInputError):
    """The disk (or quota) filled up while a file was written; the earlier file is kept."""


def _umask() -> int:
    # os.umask is the only portable way to read it: set a common value and put it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: torch turns a failed write into a RuntimeError)
    comes from a full disk or quota."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return True
        if "No space left on device" in str(seen) or "Disk quota exceeded" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it over.

    The file gets the mode an ordinary ``open`` would give it (0666 less the umask), not the
    0600 of ``mkstemp``. A full disk raises :class:`DiskFullError` with ``path`` untouched;
    the temporary file is removed whatever goes wrong.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o666 & ~_umask())
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError | RuntimeError) and _is_disk_full(exc):
            kept = f"{path} is kept as it was" if path.exists() else f"{path} was not written"
            raise DiskFullError(
                f"the disk is full (writing {path}); {kept}; free some space and try again"
            ) from None
        raise


def stale_temporaries(folder: Path, names: Iterable[str]) -> list[Path]:
    """Temporary files of :func:`atomic_write` for ``names`` left in ``folder`` by a process
    that was killed during a write (kill -9, power loss). Only our own pattern matches."""
    if not folder.is_dir():
        return []
    patterns = [re.compile(_TEMPORARY.format(name=re.escape(n)) + "$") for n in names]
    return sorted(
        p for p in folder.iterdir() if p.is_file() and any(r.match(p.name) for r in patterns)
    )


# ---------------------------------------------------------------------------- checksum
def _tensors(value: Any, where: str) -> Iterator[tuple[str, torch.Tensor]]:
    import torch

    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensors(item, f"{where}/{type(key).__name__}:{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _tensors(item, f"{where}/{index}")


def tensor_checksum(document: dict[str, Any]) -> str:
    """SHA-256 over every tensor of ``document`` (its checksum entry left out): each tensor's
    place, dtype, shape and bytes, in the sorted order of the places."""
    import torch

    digest = hashlib.sha256()
    body = {k: v for k, v in document.items() if k != "checksum"}
    for where, tensor in sorted(_tensors(body, ""), key=lambda item: item[0]):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{where}|{flat.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _verify_checksum(document: dict[str, Any], path: Path) -> None:
    stored = document.get("checksum")
    if stored is None:
        # Checkpoints written before the checksum existed carry none: they still load.
        return
    if (
        not isinstance(stored, dict)
        or stored.get("algorithm") != CHECKSUM_ALGORITHM
        or not isinstance(stored.get("sha256"), str)
    ):
        raise CheckpointError(f"{path} is corrupt: its checksum entry is not readable")
    try:
        actual = tensor_checksum(document)
    except (RuntimeError, TypeError, ValueError):  # a tensor without plain bytes (sparse, meta)
        raise CheckpointError(
            f"{path} is corrupt: it holds tensors edgefptt never writes"
        ) from None
    if actual != stored["sha256"]:
        raise CheckpointError(
            f"{path} is corrupt: its tensors do not match the checksum stored in it (bytes "
            "changed after it was written); use an intact copy or train again"
        )


# ---------------------------------------------------------------------------- entries
_SIZE = "a whole number >= 1"
# The types of the entries a checkpoint may hold; each loader says which it needs.
_DATA_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seq_len": (lambda v: type(v) is int and v >= 1, _SIZE),
    "input_size": (lambda v: type(v) is int and v >= 1, _SIZE),
    "num_outputs": (lambda v: type(v) is int and v >= 1, _SIZE),
    "task": (lambda v: v in ("classification", "regression"), "classification or regression"),
    "name": (lambda v: isinstance(v, str), "a string"),
}


def _top_level_fields() -> dict[str, tuple[Callable[[Any], bool], str]]:
    import torch

    def mapping(v: Any) -> bool:
        return isinstance(v, dict)

    def count(v: Any) -> bool:
        return type(v) is int and v >= 0

    return {
        "config": (mapping, "a mapping"),
        "data": (mapping, "a mapping"),
        "model": (
            lambda v: (
                mapping(v)
                and all(isinstance(k, str) and isinstance(t, torch.Tensor) for k, t in v.items())
            ),
            "a mapping of parameter names to tensors",
        ),
        "optimizer": (mapping, "a mapping"),
        "scheduler": (mapping, "a mapping"),
        "fptt": (lambda v: v is None or mapping(v), "a mapping or None"),
        "fptt_params": (
            lambda v: v is None or (isinstance(v, list) and all(isinstance(s, str) for s in v)),
            "a list of parameter names",
        ),
        "epoch": (count, "a whole number >= 0"),
        "next_batch": (count, "a whole number >= 0"),
        "partial": (
            lambda v: mapping(v) and all(isinstance(x, int | float) for x in v.values()),
            "a mapping of numbers",
        ),
        "history": (lambda v: isinstance(v, list), "a list"),
        "order": (lambda v: v is None or mapping(v), "a mapping or None"),
        "early_stop": (lambda v: v is None or mapping(v), "a mapping or None"),
    }


def _check_config(config: dict[str, Any], path: Path) -> None:
    """The config entry's values have the types of TrainConfig's settings (unknown keys and
    missing ones are left to the loaders)."""
    from pydantic import ValidationError

    from edgefptt.train.config import TrainConfig

    known = {k: v for k, v in config.items() if k in TrainConfig.model_fields}
    try:
        TrainConfig.model_validate(known)
    except ValidationError as exc:
        for error in exc.errors():
            loc = error.get("loc") or ()
            if loc and loc[0] in known:  # a setting of the wrong type or out of its range
                key = str(loc[0])
                raise CheckpointError(
                    f"{path}: its config entry holds {key} = {known[key]!r}, which is not valid "
                    f"({error.get('msg', 'invalid value')}); the file is damaged or not written "
                    "by edgefptt"
                ) from None
    except (TypeError, ValueError):  # checks across settings are the loaders' business
        pass


def check_entries(document: dict[str, Any], path: Path, requires: Iterable[str] = ()) -> None:
    """Raise CheckpointError naming the entry when one in ``requires`` is missing or any
    entry present has the wrong type. ``requires`` holds top-level names ("model") and
    dotted ones ("config.hidden", "data.seq_len")."""
    fields = _top_level_fields()
    required = list(requires)
    for name in {r.split(".")[0] for r in required}:
        if name not in document:
            raise CheckpointError(
                f"{path} lacks its '{name}' entry; it is not a complete checkpoint"
            )
    for name, (valid, wanted) in fields.items():
        if name in document and not valid(document[name]):
            raise CheckpointError(
                f"{path}: its '{name}' entry is {type(document[name]).__name__}, "
                f"not {wanted}; the file is damaged or not written by edgefptt"
            )
    data = document.get("data", {})
    for key, (valid, wanted) in _DATA_FIELDS.items():
        if key in data and not valid(data[key]):
            raise CheckpointError(
                f"{path}: its data entry holds {key} = {data[key]!r}, not {wanted}"
            )
    if "config" in document:
        _check_config(document["config"], path)
    for entry in required:
        name, _, key = entry.partition(".")
        if key and key not in document[name]:
            raise CheckpointError(
                f"{path}: its {name} entry lacks '{key}'; the file is damaged or was written "
                "by another program"
            )


# ---------------------------------------------------------------------------- save and load
def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as a checkpoint (with format, version and checksum) atomically."""
    import torch

    document = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    document["checksum"] = {"algorithm": CHECKSUM_ALGORITHM, "sha256": tensor_checksum(document)}
    try:
        atomic_write(path, lambda handle: torch.save(document, handle))
    except DiskFullError:
        kept = (
            f"the last good checkpoint {path} is kept; free some space and continue with --resume"
            if path.exists()
            else "no checkpoint was written; free some space and start again"
        )
        raise DiskFullError(f"the disk is full: could not write {path}; {kept}") from None


def _first_line(exc: BaseException) -> str:
    """The first line of an error, without any advice to load the file unsafely."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "weights_only" in text or "allow_pickle" in text or "can still be loaded" in line:
        return "it holds Python objects other than tensors and plain data"
    return line


def load_checkpoint(
    path: Path,
    requires: Iterable[str] = (),
    missing: str = "give a checkpoint.pt that edgefptt train wrote",
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file raises CheckpointError.

    ``requires`` names the entries the caller reads (see :func:`check_entries`); ``missing``
    ends the message when there is no file at ``path``. A checkpoint with a checksum is
    verified against it.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; {missing}")
    try:
        # Damaged pickles make torch warn ("Detected pickle protocol ...") on the way to its
        # error: the error is ours to report, in one line.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            document = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # damaged bytes, not an object
            raise CheckpointError(
                f"{path} is not a readable checkpoint (it is damaged or not a checkpoint)"
            ) from None
        # A file that weights_only refuses is never loaded another way: it could run code.
        raise CheckpointError(
            f"{path} is not an edgefptt checkpoint: it holds Python objects other than tensors "
            "and plain data, which edgefptt refuses to load (loading them could run code)"
        ) from None
    except (RuntimeError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({_first_line(exc)})") from None
    except Exception:  # torch's unpickler on damaged bytes: KeyError, IndexError, TypeError...
        raise CheckpointError(
            f"{path} is not a readable checkpoint (it is damaged or not a checkpoint)"
        ) from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an edgefptt checkpoint")
    version = document.get("version")
    if not isinstance(version, int) or version != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version "
            f"{version if isinstance(version, int) else type(version).__name__}, "
            f"this edgefptt reads version {CHECKPOINT_VERSION}"
        )
    _verify_checksum(document, path)
    check_entries(document, path, requires)
    return document


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with one JSON line per record."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(path, lambda handle: handle.write(text.encode()))
