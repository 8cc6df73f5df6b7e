"""A small SYNTHETIC corpus in the Google Speech Commands v2 layout, spoken by espeak-ng.

It is a stand-in for the *format* of GSCv2, for tests and for trying the pipeline; it says
nothing about accuracy on the real corpus (robotic formant speech, a few dozen "speakers").
Everything it writes is labelled as synthetic: the root holds ``SYNTHETIC_DATASET.txt``, and
the background files are named ``synthetic_*.wav``.

Each "speaker" is one espeak-ng voice at one speed and pitch; a speaker's clips all go to one
split (as GSCv2 splits by speaker), about 80 / 10 / 10 % of the speakers for train /
validation / test. Each clip is 1 s at 16 kHz, 16-bit mono: the word trimmed of silence,
placed at a random offset with a random gain, over a faint noise floor.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgefptt.config import MAX_SEED
from edgefptt.data.speech_commands import (
    BACKGROUND_DIR,
    KEYWORDS,
    SYNTHETIC_MARKER,
    TESTING_LIST,
    VALIDATION_LIST,
)
from edgefptt.errors import ConfigError, UserInputError

SAMPLE_RATE = 16_000
# espeak-ng voices (language + optional variant) with clearly different timbres.
VOICES = ("en-us", "en", "en-gb-scotland", "en-029", "en-us+f3", "en+f2", "en-us+m3", "en+f4")
SPEEDS = (130, 160, 190)  # words per minute
PITCHES = (30, 50, 70)  # 0..99
# The keywords plus a few of GSCv2's other words, so that the 12-class task has unknowns.
DEFAULT_WORDS = (*KEYWORDS, "bed", "cat", "dog", "house", "tree", "zero")
BACKGROUND_KINDS = ("white_noise", "pink_noise", "brown_noise", "hum", "running_tap")
MAX_REPEATS = 100  # clips per word and speaker
MAX_BACKGROUND_S = 600.0  # GSCv2's background files are about a minute long

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Speaker:
    voice: str
    speed: int
    pitch: int

    @property
    def speaker_id(self) -> str:
        """An 8-hex-digit id like GSCv2's (a hash of the voice settings)."""
        text = f"{self.voice}|{self.speed}|{self.pitch}"
        return hashlib.sha1(text.encode()).hexdigest()[:8]


@dataclass
class SyntheticSummary:
    """What :func:`make_synthetic_speech` wrote."""

    root: str
    words: list[str]
    speakers: int
    repeats: int
    clips: dict[str, int]  # per split
    background_files: list[str]
    voices: list[str]
    wall_s: float
    synthetic: bool = True
    note: str = field(
        default="SYNTHETIC espeak-ng speech in the GSCv2 layout: a stand-in for the format, "
        "not for the real corpus's accuracy"
    )


def find_espeak() -> str:
    """Path of the espeak-ng program; a UserInputError saying how to install it if absent."""
    path = shutil.which("espeak-ng")
    if path is None:
        raise UserInputError(
            "espeak-ng is not installed; install it with "
            "'apt-get update && apt-get install -y espeak-ng'"
        )
    return path


def choose_speakers(count: int, seed: int = 0) -> list[Speaker]:
    """``count`` distinct voice/speed/pitch combinations, in a seeded random order."""
    every = [Speaker(v, s, p) for v in VOICES for s in SPEEDS for p in PITCHES]
    if not 3 <= count <= len(every):
        raise ConfigError(f"--speakers must be between 3 and {len(every)} (got {count})")
    order = np.random.default_rng(seed).permutation(len(every))
    return [every[i] for i in order[:count]]


def assign_splits(speakers: Sequence[Speaker]) -> dict[str, str]:
    """speaker id -> split: the first ~10 % validation, the next ~10 % test, the rest train."""
    n = len(speakers)
    held = max(1, round(0.1 * n))
    splits = {}
    for i, speaker in enumerate(speakers):
        splits[speaker.speaker_id] = (
            "validation" if i < held else "test" if i < 2 * held else "train"
        )
    return splits


def speak(espeak: str, word: str, speaker: Speaker) -> np.ndarray:
    """espeak-ng's rendering of ``word`` as float32 samples at 16 kHz."""
    import librosa
    import soundfile

    proc = subprocess.run(
        [
            espeak,
            "-v",
            speaker.voice,
            "-s",
            str(speaker.speed),
            "-p",
            str(speaker.pitch),
            "--stdout",
            word,
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if proc.returncode != 0 or not proc.stdout:
        message = proc.stderr.decode(errors="replace").strip() or f"exit code {proc.returncode}"
        raise UserInputError(f"espeak-ng failed on {word!r} with voice {speaker.voice}: {message}")
    audio, rate = soundfile.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
    audio = audio[:, 0]
    if rate != SAMPLE_RATE:
        audio = librosa.resample(audio, orig_sr=rate, target_sr=SAMPLE_RATE)
    trimmed, _ = librosa.effects.trim(audio, top_db=35)
    return np.asarray(trimmed if len(trimmed) else audio, dtype=np.float32)


def place_in_clip(word: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 1 s clip with the word at a random offset and gain over a faint noise floor."""
    clip = rng.normal(0.0, 0.002, SAMPLE_RATE).astype(np.float32)
    word = word[:SAMPLE_RATE]
    peak = float(np.abs(word).max()) or 1.0
    gain = rng.uniform(0.3, 0.9) / peak
    start = int(rng.integers(0, SAMPLE_RATE - len(word) + 1))
    clip[start : start + len(word)] += gain * word
    return np.clip(clip, -1.0, 1.0)


def background_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """One synthetic background recording (peak about 0.5)."""
    n = int(seconds * SAMPLE_RATE)
    white = rng.normal(0.0, 1.0, n)
    t = np.arange(n) / SAMPLE_RATE
    if kind == "white_noise":
        audio = white
    elif kind in ("pink_noise", "running_tap"):
        spectrum = np.fft.rfft(white)
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        if kind == "pink_noise":
            spectrum = spectrum / np.sqrt(np.maximum(freqs, 20.0))
        else:  # band-limited hiss with a slow swell, like water from a tap
            spectrum = spectrum * ((freqs > 1000) & (freqs < 4000))
        audio = np.fft.irfft(spectrum, n)
        if kind == "running_tap":
            audio = audio * (1.0 + 0.5 * np.sin(2 * np.pi * 0.3 * t))
    elif kind == "brown_noise":
        audio = np.cumsum(white)
        audio = audio - np.convolve(audio, np.ones(801) / 801, mode="same")  # drift removed
    elif kind == "hum":
        audio = sum(np.sin(2 * np.pi * 50 * h * t) / h for h in (1, 2, 3, 5)) + 0.05 * white
    else:
        raise ConfigError(f"unknown background kind {kind!r}")
    audio = np.asarray(audio, dtype=np.float64)
    return (0.5 * audio / (np.abs(audio).max() or 1.0)).astype(np.float32)


def make_synthetic_speech(
    out_dir: str | Path,
    words: Sequence[str] = DEFAULT_WORDS,
    speakers: int = 24,
    repeats: int = 1,
    background_s: float = 20.0,
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 8,
    progress: Progress | None = None,
) -> SyntheticSummary:
    """Write a synthetic GSCv2-layout corpus to ``out_dir`` (see the module docstring)."""
    import soundfile

    started = time.perf_counter()
    words = list(dict.fromkeys(w.strip().lower() for w in words if w.strip()))
    if len(words) < 2:
        raise ConfigError("give at least two words")
    bad = [w for w in words if not w.isalpha()]
    if bad:
        raise ConfigError(f"words must be letters only (got {bad[0]!r})")
    if not 1 <= repeats <= MAX_REPEATS:
        raise ConfigError(f"--repeats must be between 1 and {MAX_REPEATS} (got {repeats})")
    if not 2 <= background_s <= MAX_BACKGROUND_S:  # NaN fails both comparisons
        raise ConfigError(
            f"--background-s must be between 2 and {MAX_BACKGROUND_S:g} seconds "
            f"(got {background_s})"
        )
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be between 0 and {MAX_SEED} (got {seed})")
    espeak = find_espeak()
    chosen = choose_speakers(speakers, seed)
    splits = assign_splits(chosen)
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        if not overwrite:
            raise UserInputError(f"{root} is not empty; choose another directory or --overwrite")
        if not (root / SYNTHETIC_MARKER).is_file():
            raise UserInputError(f"{root} is not a synthetic corpus; refusing to overwrite it")
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    # Marked first, so that a half-written corpus is recognisable (and may be overwritten).
    (root / SYNTHETIC_MARKER).write_text("SYNTHETIC DATASET (being written by edgefptt)\n")

    jobs = [(w, s, r) for w in words for s in chosen for r in range(repeats)]
    total = len(jobs) + len(BACKGROUND_KINDS)
    done = 0
    if progress is not None:
        progress(0, total)

    def render(word: str, speaker: Speaker, repeat: int) -> str:
        rng = np.random.default_rng([seed, words.index(word), chosen.index(speaker), repeat])
        clip = place_in_clip(speak(espeak, word, speaker), rng)
        rel = f"{word}/{speaker.speaker_id}_nohash_{repeat}.wav"
        soundfile.write(str(root / rel), clip, SAMPLE_RATE, subtype="PCM_16")
        return rel

    for word in words:
        (root / word).mkdir(exist_ok=True)
    listed: dict[str, list[str]] = {"validation": [], "test": []}
    counts = {"train": 0, "validation": 0, "test": 0}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(render, *job): job for job in jobs}
        for future in as_completed(futures):
            rel = future.result()
            split = splits[futures[future][1].speaker_id]
            counts[split] += 1
            if split in listed:
                listed[split].append(rel)
            done += 1
            if progress is not None:
                progress(done, total)
    (root / VALIDATION_LIST).write_text("".join(f"{p}\n" for p in sorted(listed["validation"])))
    (root / TESTING_LIST).write_text("".join(f"{p}\n" for p in sorted(listed["test"])))

    (root / BACKGROUND_DIR).mkdir(exist_ok=True)
    background = []
    for i, kind in enumerate(BACKGROUND_KINDS):
        rel = f"{BACKGROUND_DIR}/synthetic_{kind}.wav"
        audio = background_noise(kind, background_s, np.random.default_rng([seed, 1000 + i]))
        soundfile.write(str(root / rel), audio, SAMPLE_RATE, subtype="PCM_16")
        background.append(rel)
        done += 1
        if progress is not None:
            progress(done, total)
    summary = SyntheticSummary(
        root=str(root),
        words=words,
        speakers=len(chosen),
        repeats=repeats,
        clips=counts,
        background_files=background,
        voices=sorted({s.voice for s in chosen}),
        wall_s=time.perf_counter() - started,
    )
    (root / SYNTHETIC_MARKER).write_text(
        "SYNTHETIC DATASET - not Google Speech Commands.\n\n"
        "Written by `edgefptt make-speech-data` with espeak-ng (formant speech synthesis) in the\n"
        "Google Speech Commands v2 directory layout. It is a stand-in for the format, for tests\n"
        "and for trying the pipeline; accuracies on it say nothing about the real corpus.\n\n"
        f"words: {', '.join(words)}\n"
        f"speakers (voice/speed/pitch combinations): {len(chosen)}, repeats: {repeats}\n"
        f"voices: {', '.join(summary.voices)}\n"
        f"clips: {counts}\nseed: {seed}\n"
    )
    return summary
