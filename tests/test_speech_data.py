"""Speech Commands reader, features, cache and broken clips on a corpus of tones (no espeak-ng)."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from edgefptt.cli import main
from edgefptt.data import speech_commands as sc
from edgefptt.data.audio_features import FeatureSettings, compute_features
from edgefptt.errors import ConfigError, DataError

SR = 16_000
OTHER_WORDS = ("cat", "dog")
SPEAKERS = tuple(f"{i:08x}" for i in range(6))
VALIDATION_SPEAKERS = {SPEAKERS[4]}
TEST_SPEAKERS = {SPEAKERS[5]}


def tone_clip(word_index: int, rng: np.random.Generator, seconds: float = 0.6) -> np.ndarray:
    """A 'word': a tone of its own frequency (and a second one) with a smooth envelope."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 250.0 + 170.0 * word_index
    envelope = np.sin(np.pi * np.arange(n) / n)
    word = envelope * (np.sin(2 * np.pi * f0 * t) + 0.5 * np.sin(2 * np.pi * 2.3 * f0 * t))
    clip = rng.normal(0, 0.003, SR)
    start = int(rng.integers(0, SR - n))
    clip[start : start + n] += 0.4 * rng.uniform(0.6, 1.0) * word
    return clip.astype(np.float32)


def make_tone_corpus(
    root: Path, words: tuple[str, ...] = (*sc.KEYWORDS, *OTHER_WORDS), repeats: int = 1
) -> Path:
    """A GSCv2-layout corpus; speaker 4 is validation, speaker 5 test (by the list files)."""
    rng = np.random.default_rng(0)
    validation, testing = [], []
    for k, word in enumerate(words):
        (root / word).mkdir(parents=True, exist_ok=True)
        for speaker in SPEAKERS:
            for r in range(repeats):
                rel = f"{word}/{speaker}_nohash_{r}.wav"
                soundfile.write(root / rel, tone_clip(k, rng), SR, subtype="PCM_16")
                if speaker in VALIDATION_SPEAKERS:
                    validation.append(rel)
                elif speaker in TEST_SPEAKERS:
                    testing.append(rel)
    (root / sc.VALIDATION_LIST).write_text("\n".join(validation) + "\n")
    (root / sc.TESTING_LIST).write_text("\n".join(testing) + "\n")
    (root / sc.BACKGROUND_DIR).mkdir()
    for name, seconds in (("white_noise", 20.0), ("hum", 15.0)):
        noise = 0.1 * rng.normal(0, 1, int(seconds * SR))
        soundfile.write(root / sc.BACKGROUND_DIR / f"{name}.wav", noise, SR, subtype="PCM_16")
    return root


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_tone_corpus(tmp_path / "gsc")


def _options(tmp_path: Path, **kw: object) -> sc.SpeechOptions:
    return sc.SpeechOptions(cache_dir=str(tmp_path / "cache"), **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- layout
def test_splits_follow_list_files_and_unknown_silence_as_documented(corpus: Path) -> None:
    listed_val = set((corpus / "validation_list.txt").read_text().split())
    listed_test = set((corpus / "testing_list.txt").read_text().split())
    layout = sc.read_layout(corpus)
    lengths = {
        f"{sc.BACKGROUND_DIR}/white_noise.wav": 20 * SR,
        f"{sc.BACKGROUND_DIR}/hum.wav": 15 * SR,
    }
    names, index = sc.build_index(layout, sc.SpeechOptions())
    assert names == (*sc.KEYWORDS, "_unknown_", "_silence_")
    all_keyword_files = {f"{w}/{s}_nohash_0.wav" for w in sc.KEYWORDS for s in SPEAKERS}
    expected = {
        "validation": all_keyword_files & listed_val,
        "test": all_keyword_files & listed_test,
        "train": all_keyword_files - listed_val - listed_test,
    }
    windows: dict[str, list[tuple[str, int]]] = {}
    for split, clips in index.items():
        words = [c for c in clips if c.label < 10]
        assert {c.path for c in words} == expected[split]
        for c in words:  # the label is the folder's keyword
            assert sc.KEYWORDS[c.label] == c.path.split("/")[0]
        unknown = [c for c in clips if c.label == 10]
        assert len(unknown) == math.ceil(0.1 * len(expected[split]))
        assert len({c.path for c in unknown}) == len(unknown)
        for c in unknown:
            assert c.path.split("/")[0] in OTHER_WORDS
            assert (c.path in listed_val, c.path in listed_test) == (
                split == "validation",
                split == "test",
            )
        silence = [c for c in clips if c.label == 11]
        assert len(silence) == math.ceil(0.1 * len(expected[split]))
        lo_frac, hi_frac = {"train": (0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1)}[split]
        for c in silence:
            assert c.length == SR
            n = lengths[c.path]
            assert n * lo_frac <= c.start and c.start + SR <= n * hi_frac + 1
        windows[split] = [(c.path, c.start) for c in silence]
    # no noise sample shared between the train and test silence windows
    for path, start in windows["train"]:
        for other, other_start in windows["test"]:
            assert path != other or abs(start - other_start) >= SR


def test_task_35_and_custom(corpus: Path, tmp_path: Path) -> None:
    layout = sc.read_layout(corpus)
    names, index = sc.build_index(layout, sc.SpeechOptions(task="35"))
    assert names == tuple(sorted([*sc.KEYWORDS, *OTHER_WORDS]))
    assert sum(len(v) for v in index.values()) == 12 * len(SPEAKERS)
    names, _ = sc.build_index(layout, sc.SpeechOptions(task="custom", words=("cat", "yes")))
    assert names == ("cat", "yes", "_unknown_", "_silence_")
    names, _ = sc.build_index(
        layout,
        sc.SpeechOptions(
            task="custom", words=("cat", "yes"), unknown_fraction=0, silence_fraction=0
        ),
    )
    assert names == ("cat", "yes")
    with pytest.raises(DataError, match="no word folder for bird"):
        sc.build_index(layout, sc.SpeechOptions(task="custom", words=("bird",)))
    with pytest.raises(ConfigError, match="--words"):
        sc.build_index(layout, sc.SpeechOptions(task="custom"))


def test_missing_list_and_empty_folder_are_clear_errors(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (corpus / "zzz").mkdir()
    with pytest.raises(DataError, match=r"zzz holds no \.wav"):
        sc.read_layout(corpus)
    (corpus / "zzz").rmdir()
    (corpus / "testing_list.txt").unlink()
    with pytest.raises(DataError, match=r"testing_list\.txt"):
        sc.read_layout(corpus)
    code = main(
        ["train", "--dataset", "speech_commands", "--data-dir", str(corpus), "--epochs", "1"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "testing_list.txt" in err
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------- features
def _read_pcm16(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64) / 32768


def direct_features(audio: np.ndarray, kind: str, n: int, mel_bands: int = 40) -> np.ndarray:
    """25 ms periodic-Hann frames every 10 ms, 512-point power spectrum, HTK mel, log, DCT."""
    n_fft, win, hop = 512, 400, 160
    clip = np.zeros(SR)
    clip[: min(SR, len(audio))] = audio[:SR]
    padded = np.concatenate([np.zeros(n_fft // 2), clip, np.zeros(n_fft // 2)])
    window = np.zeros(n_fft)
    window[(n_fft - win) // 2 : (n_fft - win) // 2 + win] = 0.5 - 0.5 * np.cos(
        2 * np.pi * np.arange(win) / win
    )
    frames = np.stack([padded[t * hop : t * hop + n_fft] * window for t in range(SR // hop)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (100, 257)
    bands = n if kind == "logmel" else mel_bands
    to_mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    to_hz = lambda m: 700 * (10 ** (m / 2595) - 1)  # noqa: E731
    edges = to_hz(np.linspace(0, to_mel(SR / 2), bands + 2))
    freqs = np.arange(n_fft // 2 + 1) * SR / n_fft
    bank = np.zeros((bands, len(freqs)))
    for b in range(bands):
        left, centre, right = edges[b : b + 3]
        rising = (freqs - left) / (centre - left)
        falling = (right - freqs) / (right - centre)
        bank[b] = np.maximum(0, np.minimum(rising, falling))
    log_mel = np.log(power @ bank.T + 1e-6)  # (100, bands)
    if kind == "logmel":
        return log_mel
    k = np.arange(n)[:, None]
    m = np.arange(bands)[None, :]
    dct = np.sqrt(2 / bands) * np.cos(np.pi * k * (2 * m + 1) / (2 * bands))
    dct[0] /= np.sqrt(2)
    return log_mel @ dct.T


@pytest.mark.parametrize(("kind", "n"), [("mfcc", 40), ("mfcc", 13), ("logmel", 40)])
def test_features_match_a_direct_computation(corpus: Path, kind: str, n: int) -> None:
    audio = _read_pcm16(corpus / "yes" / f"{SPEAKERS[0]}_nohash_0.wav")
    settings = FeatureSettings(kind=kind, features=n)  # type: ignore[arg-type]
    got = compute_features(audio.astype(np.float32), settings)
    want = direct_features(audio, kind, n)
    assert got.shape == (100, n) == want.shape
    scale = np.abs(want).max()
    np.testing.assert_allclose(got, want, atol=2e-3 * scale, rtol=1e-3)


def test_loader_features_are_the_direct_ones_standardised(corpus: Path, tmp_path: Path) -> None:
    options = _options(
        tmp_path, unknown_fraction=0, silence_fraction=0, task="custom", words=("yes", "no")
    )
    data = sc.load(corpus, options)
    assert data.class_names == ("yes", "no") and data.seq_len == 100 and data.input_size == 40
    # train clips: speakers 0..3 of 'yes' then of 'no', in file order
    mean, std = np.array(data.stats["feature_mean"]), np.array(data.stats["feature_std"])
    direct = [
        direct_features(_read_pcm16(corpus / w / f"{s}_nohash_0.wav"), "mfcc", 40)
        for w in ("yes", "no")
        for s in SPEAKERS[:4]
    ]
    stacked = np.stack(direct)
    np.testing.assert_allclose(mean, stacked.mean(axis=(0, 1)), rtol=1e-3, atol=1e-2)
    for i, want in enumerate(direct):
        got = data.train_x[i].numpy() * std + mean
        np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max())
    assert data.train_y.tolist() == [0] * 4 + [1] * 4
    assert data.test_y.tolist() == [0, 1]


def test_short_and_long_clips_are_padded_or_trimmed(tmp_path: Path) -> None:
    settings = FeatureSettings()
    rng = np.random.default_rng(1)
    long = rng.normal(0, 0.1, 2 * SR).astype(np.float32)
    short = long[: SR // 2]
    np.testing.assert_allclose(
        compute_features(long, settings), compute_features(long[:SR], settings)
    )
    padded = np.concatenate([short, np.zeros(SR - len(short), dtype=np.float32)])
    np.testing.assert_allclose(
        compute_features(short, settings), compute_features(padded, settings)
    )


# ---------------------------------------------------------------------------- cache
def test_cache_used_on_second_pass_and_invalidated(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []
    real = sc.compute_features

    def counting(audio: np.ndarray, settings: FeatureSettings) -> np.ndarray:
        calls.append(settings.key())
        return real(audio, settings)

    monkeypatch.setattr(sc, "compute_features", counting)
    options = _options(tmp_path)
    first = sc.load(corpus, options)
    n = len(first.train_y) + len(first.test_y)
    assert len(calls) == n and first.stats["computed_clips"] == n
    calls.clear()
    second = sc.load(corpus, options)
    assert calls == [] and second.stats["cached_clips"] == n
    assert np.array_equal(first.train_x.numpy(), second.train_x.numpy())
    # another feature setting: another cache, everything computed again
    other = _options(tmp_path, features=FeatureSettings(kind="logmel", features=32))
    third = sc.load(corpus, other)
    assert len(calls) == n and third.input_size == 32 and third.stats["cached_clips"] == 0
    # a changed file is recomputed, the rest still comes from the cache
    calls.clear()
    clip = corpus / "yes" / f"{SPEAKERS[0]}_nohash_0.wav"
    soundfile.write(clip, 0.5 * tone_clip(3, np.random.default_rng(7)), SR, subtype="PCM_16")
    fourth = sc.load(corpus, options)
    assert len(calls) == 1 and fourth.stats["cached_clips"] == n - 1


# ---------------------------------------------------------------------------- broken clips
def test_broken_clips_are_skipped_and_counted(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = {
        "yes/bad00000_nohash_0.wav": "unreadable",
        "no/bad00001_nohash_0.wav": "sample rate 8000",
        "up/bad00002_nohash_0.wav": "empty",
        "down/bad00003_nohash_0.wav": "2 channels",
    }
    (corpus / "yes/bad00000_nohash_0.wav").write_bytes(b"this is not a wav file")
    soundfile.write(corpus / "no/bad00001_nohash_0.wav", np.zeros(8000), 8000, subtype="PCM_16")
    soundfile.write(corpus / "up/bad00002_nohash_0.wav", np.zeros(0), SR, subtype="PCM_16")
    soundfile.write(corpus / "down/bad00003_nohash_0.wav", np.zeros((SR, 2)), SR, subtype="PCM_16")
    data = sc.load(corpus, _options(tmp_path))
    reasons = {s.path: s.reason for s in data.skipped}
    assert set(reasons) == set(bad)
    for path, needle in bad.items():
        assert needle in reasons[path]
    assert data.stats["skipped_clips"] == 4
    # the 4 broken files are training clips (in no list): 40 good keyword clips remain, and the
    # unknown and silence sizes count the 44 keyword files found: ceil(4.4) = 5 each
    labels = data.train_y.tolist()
    assert sum(label < 10 for label in labels) == 40
    assert labels.count(10) == 5 and labels.count(11) == 5
    code = main(
        [
            "train",
            "--dataset",
            "speech_commands",
            "--data-dir",
            str(corpus),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--algorithm",
            "bptt",
            "--out",
            str(tmp_path / "run"),
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    doc = json.loads(captured.out)
    assert doc["data"]["skipped_clips"] == 4
    assert "skipped 4 broken clip(s)" in captured.err


def test_augmentation_copies(corpus: Path, tmp_path: Path) -> None:
    base = sc.load(corpus, _options(tmp_path))
    plain = sc.load(corpus, _options(tmp_path, augment=2, time_shift_ms=0, noise_level=0))
    n = len(base.train_y)
    assert len(plain.train_y) == 3 * n and plain.stats["augmented_clips"] == 2 * n
    # no shift and no noise: the copies are the clips themselves (up to the new mean and std)
    raw = plain.train_x.numpy() * np.array(plain.stats["feature_std"]) + plain.stats["feature_mean"]
    copies = raw[n:].reshape(n, 2, *raw.shape[1:])  # two copies of each clip, in clip order
    for c in range(2):
        np.testing.assert_allclose(copies[:, c], raw[:n], atol=1e-4)
    assert plain.train_y[n:].tolist() == [y for y in plain.train_y[:n].tolist() for _ in range(2)]
    noisy = sc.load(corpus, _options(tmp_path, augment=1, time_shift_ms=100, noise_level=0.3))
    raw = noisy.train_x.numpy() * np.array(noisy.stats["feature_std"]) + noisy.stats["feature_mean"]
    assert np.abs(raw[n:] - raw[:n]).mean() > 0.1
