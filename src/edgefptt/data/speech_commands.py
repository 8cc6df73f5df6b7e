"""Google Speech Commands v2 (GSCv2) from its distributed directory layout (never downloaded).

Layout under ``data_dir``: one folder of 16 kHz mono WAV files per word
(``yes/0a7c2a8d_nohash_0.wav``), ``validation_list.txt`` and ``testing_list.txt`` (one
``word/file.wav`` per line), and ``_background_noise_/`` (long noise recordings). A clip listed
in neither file is a training clip.

Tasks:

- ``12``: the ten keywords (yes, no, up, down, left, right, on, off, stop, go) plus
  ``_unknown_`` and ``_silence_``, as in the dataset's paper and TensorFlow's reference script.
- ``35``: one class per word folder found (35 in GSCv2); no unknown or silence class.
- ``custom``: the words given, plus ``_unknown_`` and ``_silence_`` as in the 12-class task.

``_unknown_`` and ``_silence_`` are built per split: their sizes are
``ceil(fraction * n)`` where n is the number of clips of the task's words listed in that split
(fractions 0.1 by default; 0 drops the class). Unknown clips are drawn without replacement from
the split's clips of the other words; silence clips are 1 s windows cut from the background
files, each file's samples divided in time into train (first 80 %), validation (next 10 %) and
test (last 10 %) portions, so no noise sample is shared between splits. Both draws use a fixed
seed, independent of the training seed, so test sets are comparable between runs.

Features (see :mod:`edgefptt.data.audio_features`) are cached on disk under
``cache_dir/<settings hash>/<data dir hash>/<word>.npz`` with each file's size and mtime; a
changed setting uses another folder, a changed file is recomputed. Clips that cannot be read,
are empty, are not mono or have another sample rate are skipped and listed, never fatal.
Augmentation (optional) adds copies of each training clip with a random time shift and
background noise at a set level; those copies are recomputed on every load (not cached).
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from edgefptt.data.audio_features import FeatureSettings, compute_features, pad_or_trim
from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError, DataError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
GSC_WORDS = (
    *KEYWORDS,
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow"),
    *("backward", "forward", "follow", "learn", "visual"),
)
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
BACKGROUND_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
# The synthetic generator writes this file; its presence marks a corpus as synthetic.
SYNTHETIC_MARKER = "SYNTHETIC_DATASET.txt"
SPLITS = ("train", "validation", "test")
NOISE_PORTIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
INDEX_SEED = 0
DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgefptt"

Task = Literal["12", "35", "custom"]
# progress(done, total): called as clips are loaded, for the CLI's progress bar.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class SpeechOptions:
    """How to turn a GSCv2 directory into sequences; the defaults are the 12-class MFCC task."""

    task: Task = "12"
    words: tuple[str, ...] = ()
    features: FeatureSettings = field(default_factory=FeatureSettings)
    unknown_fraction: float = 0.1
    silence_fraction: float = 0.1
    augment: int = 0  # augmented copies of each training clip
    time_shift_ms: float = 100.0
    noise_level: float = 0.1
    cache_dir: str | None = None
    eval_split: Literal["validation", "test"] = "test"


@dataclass(frozen=True)
class Clip:
    """One example: ``samples`` [start, start + length) of a file, or the whole file."""

    path: str  # relative to the data directory, with '/' separators
    label: int
    start: int = 0
    length: int | None = None  # None: the whole file (padded or trimmed to the clip length)

    @property
    def name(self) -> str:
        return self.path if self.length is None else f"{self.path}@{self.start}"


@dataclass(frozen=True)
class SkippedClip:
    path: str
    reason: str


@dataclass(frozen=True)
class SpeechLayout:
    """What a GSCv2 directory holds: word folders, their clips and the split lists."""

    root: Path
    files: dict[str, tuple[str, ...]]  # word -> sorted relative paths
    validation: frozenset[str]
    testing: frozenset[str]
    background: tuple[str, ...]
    missing_listed: tuple[str, ...]  # list entries with no file
    synthetic: bool

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.files)

    def split_of(self, path: str) -> str:
        if path in self.validation:
            return "validation"
        if path in self.testing:
            return "test"
        return "train"


@dataclass(frozen=True)
class SpeechData(SequenceData):
    """A :class:`SequenceData` with what the speech loader found along the way."""

    class_names: tuple[str, ...] = ()
    skipped: tuple[SkippedClip, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False


# ---------------------------------------------------------------------------- layout
def _read_list(root: Path, name: str) -> frozenset[str]:
    path = root / name
    if not path.is_file():
        raise DataError(
            f"{root} has no {name}; a Speech Commands directory needs validation_list.txt and "
            "testing_list.txt beside the word folders"
        )
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return frozenset(line.strip().replace("\\", "/") for line in lines if line.strip())


def read_layout(data_dir: str | Path) -> SpeechLayout:
    """Index a GSCv2 directory; raises DataError if a list file is missing or a folder empty."""
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist; pass --data-dir with GSCv2")
    validation = _read_list(root, VALIDATION_LIST)
    testing = _read_list(root, TESTING_LIST)
    both = sorted(validation & testing)
    if both:
        raise DataError(f"{both[0]} is in both {VALIDATION_LIST} and {TESTING_LIST}")
    files: dict[str, tuple[str, ...]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name.startswith(("_", ".")):
            continue
        clips = tuple(sorted(f"{folder.name}/{f.name}" for f in folder.glob("*.wav")))
        if not clips:
            raise DataError(f"word folder {folder} holds no .wav files")
        files[folder.name] = clips
    if not files:
        raise DataError(f"{root} has no word folders (one folder of .wav files per word)")
    background_dir = root / BACKGROUND_DIR
    background = (
        tuple(sorted(f"{BACKGROUND_DIR}/{f.name}" for f in background_dir.glob("*.wav")))
        if background_dir.is_dir()
        else ()
    )
    present = {path for clips in files.values() for path in clips}
    missing = tuple(sorted((validation | testing) - present))
    return SpeechLayout(
        root=root,
        files=files,
        validation=validation,
        testing=testing,
        background=background,
        missing_listed=missing,
        synthetic=(root / SYNTHETIC_MARKER).is_file(),
    )


def task_words(layout: SpeechLayout, task: str, words: Sequence[str] = ()) -> tuple[str, ...]:
    """The word classes of a task (without unknown and silence)."""
    if task == "12":
        chosen: tuple[str, ...] = KEYWORDS
    elif task == "35":
        return layout.words
    elif task == "custom":
        if not words:
            raise ConfigError("--task custom needs --words, e.g. --words yes,no,cat")
        chosen = tuple(dict.fromkeys(words))
    else:
        raise ConfigError(f"unknown --task {task!r}; choose 12, 35 or custom")
    absent = [w for w in chosen if w not in layout.files]
    if absent:
        raise DataError(f"{layout.root} has no word folder for {', '.join(absent)}")
    return chosen


def class_names(
    layout: SpeechLayout, options: SpeechOptions
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(class names in label order, the words that feed the unknown class)."""
    words = task_words(layout, options.task, options.words)
    names = list(words)
    others: tuple[str, ...] = ()
    if options.task != "35":
        others = tuple(w for w in layout.words if w not in words)
        if options.unknown_fraction > 0:
            if not others:
                raise DataError(
                    f"{layout.root} has no other words to build {UNKNOWN} from; "
                    "use --unknown-fraction 0"
                )
            names.append(UNKNOWN)
        if options.silence_fraction > 0:
            if not layout.background:
                raise DataError(
                    f"{layout.root}/{BACKGROUND_DIR} holds no .wav files to cut {SILENCE} from; "
                    "use --silence-fraction 0"
                )
            names.append(SILENCE)
    return tuple(names), others


def _stable_rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def build_index(
    layout: SpeechLayout,
    options: SpeechOptions,
    background_lengths: dict[str, int] | None = None,
) -> tuple[tuple[str, ...], dict[str, list[Clip]]]:
    """Class names and the clips of every split, as documented in this module.

    ``background_lengths`` gives each background file's length in samples (files that cannot
    be read are left out of it); it is read from the files when not given.
    """
    names, others = class_names(layout, options)
    words = names[: len(names) - (UNKNOWN in names) - (SILENCE in names)]
    clip_samples = options.features.clip_samples
    if background_lengths is None and SILENCE in names:
        background_lengths = _background_lengths(layout)[0]
    index: dict[str, list[Clip]] = {split: [] for split in SPLITS}
    for label, word in enumerate(words):
        for path in layout.files[word]:
            index[layout.split_of(path)].append(Clip(path, label))
    for split in SPLITS:
        count = len(index[split])
        if UNKNOWN in names:
            pool = [p for w in others for p in layout.files[w] if layout.split_of(p) == split]
            wanted = min(len(pool), math.ceil(options.unknown_fraction * count))
            chosen = _stable_rng(INDEX_SEED, "unknown", split).choice(
                len(pool), wanted, replace=False
            )
            label = names.index(UNKNOWN)
            index[split].extend(Clip(pool[i], label) for i in sorted(chosen))
        if SILENCE in names:
            lengths = background_lengths or {}
            usable = [p for p in layout.background if p in lengths]
            if not usable:
                raise DataError(f"no background file in {layout.root / BACKGROUND_DIR} is readable")
            rng = _stable_rng(INDEX_SEED, "silence", split)
            lo_frac, hi_frac = NOISE_PORTIONS[split]
            label = names.index(SILENCE)
            for i in range(math.ceil(options.silence_fraction * count)):
                path = usable[i % len(usable)]
                lo, hi = int(lengths[path] * lo_frac), int(lengths[path] * hi_frac)
                start = int(rng.integers(lo, max(lo, hi - clip_samples) + 1))
                index[split].append(Clip(path, label, start, clip_samples))
    return names, index


# ---------------------------------------------------------------------------- audio
# Float WAVs hold samples in [-1, 1]; a clip louder than this is damaged (its features would
# overflow float32 and turn into NaN), not loud.
MAX_SAMPLE_MAGNITUDE = 1000.0


class BrokenClip(Exception):
    """A clip that cannot be used; the message says why."""


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of a WAV file; raises BrokenClip if it cannot be used."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile raises several types for unreadable files
        raise BrokenClip(f"unreadable ({type(exc).__name__})") from None
    if rate != sample_rate:
        raise BrokenClip(f"sample rate {rate} Hz, expected {sample_rate} Hz")
    if samples.shape[0] == 0:
        raise BrokenClip("empty")
    if samples.shape[1] != 1:
        raise BrokenClip(f"{samples.shape[1]} channels, expected mono")
    audio = samples[:, 0]
    if not np.isfinite(audio).all():
        raise BrokenClip("non-finite samples (NaN or infinity)")
    peak = float(np.abs(audio).max())
    if peak > MAX_SAMPLE_MAGNITUDE:
        raise BrokenClip(f"samples up to {peak:.3g}, far outside the [-1, 1] range of a float WAV")
    return audio


def _background_lengths(layout: SpeechLayout) -> tuple[dict[str, int], list[SkippedClip]]:
    import soundfile

    lengths, skipped = {}, []
    for path in layout.background:
        try:
            info = soundfile.info(str(layout.root / path))
        except Exception as exc:
            skipped.append(SkippedClip(path, f"unreadable ({type(exc).__name__})"))
            continue
        if info.frames == 0:
            skipped.append(SkippedClip(path, "empty"))
        elif info.channels != 1:
            skipped.append(SkippedClip(path, f"{info.channels} channels, expected mono"))
        else:
            lengths[path] = int(info.frames)
    return lengths, skipped


class FeatureCache:
    """Feature frames per clip on disk, one ``.npz`` per word folder, keyed by the settings."""

    def __init__(self, cache_dir: str | Path, data_dir: Path, settings: FeatureSettings) -> None:
        root_id = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:12]
        self.folder = Path(cache_dir) / "speech_commands" / settings.key() / root_id
        self.data_dir = data_dir
        self.settings = settings
        self.hits = 0
        self.computed = 0

    def _group_path(self, group: str) -> Path:
        return self.folder / f"{group}.npz"

    def _stamp(self, path: str) -> tuple[int, int]:
        try:
            st = (self.data_dir / path).stat()
        except OSError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)

    def _load_group(self, group: str) -> dict[str, tuple[tuple[int, int], np.ndarray | str]]:
        path = self._group_path(group)
        if not path.is_file():
            return {}
        shape = (self.settings.num_frames, self.settings.features)
        entries: dict[str, tuple[tuple[int, int], np.ndarray | str]] = {}
        try:
            with np.load(path, allow_pickle=False) as saved:
                names, stamps = saved["names"], saved["stamps"]
                feats, errors = saved["features"], saved["errors"]
            for i, name in enumerate(names.tolist()):
                stamp = (int(stamps[i, 0]), int(stamps[i, 1]))
                if not errors[i] and feats[i].shape != shape:
                    raise ValueError(f"features of {name} have shape {feats[i].shape}")
                entries[str(name)] = (stamp, str(errors[i]) if errors[i] else feats[i])
        except Exception:  # a damaged cache file is rebuilt, never trusted
            return {}
        return entries

    def _save_group(self, group: str, entries: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        names = sorted(entries)
        shape = (self.settings.num_frames, self.settings.features)
        feats = np.zeros((len(names), *shape), dtype=np.float32)
        errors = []
        for i, name in enumerate(names):
            value = entries[name][1]
            if isinstance(value, str):
                errors.append(value)
            else:
                feats[i] = value
                errors.append("")
        stamps = np.array([entries[n][0] for n in names], dtype=np.int64).reshape(-1, 2)
        tmp = self._group_path(group).with_suffix(".tmp.npz")
        np.savez(tmp, names=np.array(names), stamps=stamps, features=feats, errors=np.array(errors))
        os.replace(tmp, self._group_path(group))  # atomic: a crash never leaves half a file

    def features(
        self, clips: Sequence[Clip], progress: Callable[[int], None] | None = None
    ) -> list[np.ndarray | str]:
        """Frames (T, F) of each clip, or the reason it was skipped; fills the cache."""
        by_group: dict[str, list[int]] = {}
        for i, clip in enumerate(clips):
            by_group.setdefault(clip.path.split("/")[0], []).append(i)
        out: list[np.ndarray | str] = [""] * len(clips)
        for group, positions in by_group.items():
            entries = self._load_group(group)
            changed = False
            for i in positions:
                clip = clips[i]
                stamp = self._stamp(clip.path)
                cached = entries.get(clip.name)
                if cached is not None and cached[0] == stamp:
                    out[i] = cached[1]
                    self.hits += 1
                else:
                    out[i] = self._compute(clip)
                    entries[clip.name] = (stamp, out[i])
                    self.computed += 1
                    changed = True
                if progress is not None:
                    progress(1)
            if changed:
                self._save_group(group, entries)
        return out

    def _compute(self, clip: Clip) -> np.ndarray | str:
        try:
            audio = read_audio(self.data_dir / clip.path, self.settings.sample_rate)
        except BrokenClip as exc:
            return str(exc)
        if clip.length is not None:
            audio = audio[clip.start : clip.start + clip.length]
        return finite_features(audio, self.settings)


def finite_features(audio: np.ndarray, settings: FeatureSettings) -> np.ndarray | str:
    """The clip's feature frames, or why it is skipped when they are not all finite."""
    feats = compute_features(audio, settings)
    if not np.isfinite(feats).all():
        return "its features are not finite (damaged samples)"
    return feats


# ---------------------------------------------------------------------------- augmentation
def _augmented_features(
    layout: SpeechLayout,
    clips: Sequence[Clip],
    options: SpeechOptions,
    background_lengths: dict[str, int],
    seed: int,
    progress: Callable[[int], None] | None,
) -> tuple[list[np.ndarray], list[int]]:
    """``options.augment`` shifted, noise-mixed copies of each clip (broken clips left out)."""
    settings = options.features
    n = settings.clip_samples
    max_shift = round(settings.sample_rate * options.time_shift_ms / 1000)
    noise_sources = [p for p in layout.background if p in background_lengths]
    noise_audio: dict[str, np.ndarray] = {}
    for path in noise_sources:
        try:
            audio = read_audio(layout.root / path, settings.sample_rate)
        except BrokenClip:
            continue
        noise_audio[path] = audio[: int(len(audio) * NOISE_PORTIONS["train"][1])]
    rng = np.random.default_rng([seed, 0x5EEC])
    feats, labels = [], []
    for clip in clips:
        try:
            audio = read_audio(layout.root / clip.path, settings.sample_rate)
        except BrokenClip:
            if progress is not None:
                progress(options.augment)
            continue
        if clip.length is not None:
            audio = audio[clip.start : clip.start + clip.length]
        base = pad_or_trim(audio, n)
        for _ in range(options.augment):
            shift = int(rng.integers(-max_shift, max_shift + 1)) if max_shift else 0
            shifted = np.zeros(n, dtype=np.float32)
            if shift >= 0:
                shifted[shift:] = base[: n - shift]
            else:
                shifted[:shift] = base[-shift:]
            if noise_audio and options.noise_level > 0:
                noise = list(noise_audio.values())[int(rng.integers(len(noise_audio)))]
                start = int(rng.integers(0, max(1, len(noise) - n + 1)))
                shifted = shifted + options.noise_level * pad_or_trim(noise[start : start + n], n)
            result = finite_features(shifted, settings)
            if not isinstance(result, str):
                feats.append(result)
                labels.append(clip.label)
            if progress is not None:
                progress(1)
    return feats, labels


# ---------------------------------------------------------------------------- loading
def _check_every_class_kept(
    clips: Sequence[Clip],
    labels: Sequence[int],
    names: Sequence[str],
    skipped: Sequence[SkippedClip],
    split: str,
    root: Path,
) -> None:
    """Refuse a class whose clips in ``split`` were all skipped as broken: it would be a class
    the model never sees (or a per-class accuracy over no clips)."""
    kept = set(labels)
    reasons = {s.path: s.reason for s in skipped}
    for label, name in enumerate(names):
        indexed = [c for c in clips if c.label == label]
        if indexed and label not in kept:
            how = {
                SILENCE: f"fix the files in {BACKGROUND_DIR}/ or use --silence-fraction 0",
                UNKNOWN: "fix those clips or use --unknown-fraction 0",
            }.get(name, f"fix or replace the files in {root / name}, or leave the word out")
            raise DataError(
                f"every {split} clip of {name!r} in {root} ({len(indexed)}) was skipped as broken "
                f"(first: {indexed[0].name}: {reasons.get(indexed[0].name, 'broken')}); {how}"
            )


def _limit(clips: list[Clip], limit: int | None, split: str) -> list[Clip]:
    if limit is None or len(clips) <= limit:
        return clips
    chosen = _stable_rng(INDEX_SEED, "limit", split).choice(len(clips), limit, replace=False)
    return [clips[i] for i in sorted(chosen)]


def load(
    data_dir: str | Path | None,
    options: SpeechOptions | None = None,
    limit: int | None = None,
    seed: int = 0,
    progress: Progress | None = None,
) -> SpeechData:
    """Train and evaluation splits of a GSCv2 directory as (N, T, features) float32 tensors.

    Features are standardised per coefficient with the training split's mean and standard
    deviation. ``limit`` keeps a fixed random subset of N clips per split; ``seed`` drives
    augmentation only.
    """
    options = options or SpeechOptions()
    if data_dir is None:
        raise ConfigError(
            "the speech_commands dataset needs --data-dir pointing at a Speech Commands "
            "directory (or make one with 'edgefptt make-speech-data -o DIR')"
        )
    if options.augment < 0 or options.noise_level < 0 or options.time_shift_ms < 0:
        raise ConfigError("--augment, --noise-level and --time-shift-ms must not be negative")
    for name in ("unknown_fraction", "silence_fraction"):
        if not 0 <= getattr(options, name) <= 10:
            raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 10")
    layout = read_layout(data_dir)
    lengths, skipped_background = _background_lengths(layout)
    names, index = build_index(layout, options, lengths)
    splits = {"train": _limit(index["train"], limit, "train")}
    splits[options.eval_split] = _limit(index[options.eval_split], limit, options.eval_split)
    for split, clips in splits.items():
        if not clips:
            raise DataError(f"{layout.root} has no {split} clips for this task")
    cache = FeatureCache(options.cache_dir or DEFAULT_CACHE_DIR, layout.root, options.features)
    total = sum(len(c) for c in splits.values()) + len(splits["train"]) * options.augment
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)
    skipped = [SkippedClip(p, "listed but missing") for p in layout.missing_listed]
    skipped += skipped_background
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    augmented = 0
    for split, clips in splits.items():
        results = cache.features(clips, advance)
        feats, labels = [], []
        for clip, result in zip(clips, results, strict=True):
            if not isinstance(result, str) and not np.isfinite(result).all():
                result = "its features are not finite (damaged samples)"  # an old cache entry
            if isinstance(result, str):
                skipped.append(SkippedClip(clip.name, result))
            else:
                feats.append(result)
                labels.append(clip.label)
        _check_every_class_kept(clips, labels, names, skipped, split, layout.root)
        if split == "train" and options.augment:
            extra, extra_labels = _augmented_features(
                layout, clips, options, lengths, seed, advance
            )
            feats += extra
            augmented = len(extra)
            labels += extra_labels
        if not feats:
            raise DataError(f"every {split} clip in {layout.root} was skipped as broken")
        arrays[split] = (np.stack(feats).astype(np.float32), np.array(labels, dtype=np.int64))
    train_x, train_y = arrays["train"]
    test_x, test_y = arrays[options.eval_split]
    mean = train_x.mean(axis=(0, 1))
    std = train_x.std(axis=(0, 1)) + 1e-5
    unique_skipped = tuple({s.path: s for s in skipped}.values())
    task_name = options.task if options.task != "custom" else f"custom{len(names)}"
    return SpeechData(
        name=("synthetic-" if layout.synthetic else "") + f"speech_commands-{task_name}",
        train_x=torch.from_numpy((train_x - mean) / std),
        train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy((test_x - mean) / std),
        test_y=torch.from_numpy(test_y),
        num_classes=len(names),
        class_names=names,
        skipped=unique_skipped,
        synthetic=layout.synthetic,
        stats={
            "train_clips": len(train_y),
            "eval_clips": len(test_y),
            "eval_split": options.eval_split,
            "augmented_clips": augmented,
            "cached_clips": cache.hits,
            "computed_clips": cache.computed,
            "skipped_clips": len(unique_skipped),
            "cache_dir": str(cache.folder),
            "feature_key": options.features.key(),
            "features": options.features.model_dump(),
            "feature_mean": mean.tolist(),
            "feature_std": std.tolist(),
        },
    )
