"""Log-mel and MFCC frames of 1-second clips, computed with librosa.

The frame layout (25 ms Hann window, 10 ms hop, 512-point FFT at 16 kHz) is fixed by
:class:`FeatureSettings`; frame t is centred on sample ``t * hop`` (the clip is zero-padded by
half an FFT on both sides), and exactly ``clip_samples // hop`` frames are kept, so a 1 s clip
gives T = 100 steps.

- ``logmel``: ``log(mel_power + 1e-6)`` of an HTK-scale triangular mel filterbank (peak 1,
  0 Hz to sample_rate / 2) applied to the power spectrum.
- ``mfcc``: the first ``features`` coefficients of the orthonormal DCT-II of that log-mel
  (over ``mel_bands`` bands).
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Bump when the computation changes in a way the settings do not show: it is part of the cache key.
FEATURE_VERSION = 1
LOG_FLOOR = 1e-6


class FeatureSettings(BaseModel):
    """Everything that decides the feature frames of a clip (and so the cache key)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["mfcc", "logmel"] = "mfcc"
    features: int = Field(40, ge=1, le=128, description="values per frame (I)")
    mel_bands: int = Field(40, ge=1, le=128, description="mel bands (MFCC: >= features)")
    sample_rate: int = Field(16_000, ge=1000)
    window_ms: float = Field(25.0, gt=0)
    hop_ms: float = Field(10.0, gt=0)
    n_fft: int = Field(512, ge=16)
    clip_s: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _check(self) -> FeatureSettings:
        if self.kind == "mfcc" and self.features > self.mel_bands:
            raise ValueError(
                f"MFCC needs features <= mel_bands (got {self.features} > {self.mel_bands})"
            )
        if self.win_length > self.n_fft:
            raise ValueError(f"a {self.window_ms} ms window is longer than n_fft = {self.n_fft}")
        if self.num_frames < 1:
            raise ValueError("the clip is shorter than one hop")
        return self

    @property
    def win_length(self) -> int:
        return round(self.sample_rate * self.window_ms / 1000)

    @property
    def hop_length(self) -> int:
        return round(self.sample_rate * self.hop_ms / 1000)

    @property
    def clip_samples(self) -> int:
        return round(self.sample_rate * self.clip_s)

    @property
    def num_frames(self) -> int:
        """T: frames per clip."""
        return self.clip_samples // self.hop_length

    @property
    def mels(self) -> int:
        """Mel bands actually used (log-mel uses one band per feature)."""
        return self.features if self.kind == "logmel" else self.mel_bands

    def key(self) -> str:
        """A short stable hash of the settings, naming their cache folder."""
        text = json.dumps({"v": FEATURE_VERSION, **self.model_dump()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def pad_or_trim(audio: np.ndarray, length: int) -> np.ndarray:
    """Zero-pad at the end, or cut the end, to exactly ``length`` samples (float32)."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= length:
        return audio[:length]
    return np.concatenate([audio, np.zeros(length - len(audio), dtype=np.float32)])


def compute_features(audio: np.ndarray, settings: FeatureSettings) -> np.ndarray:
    """Feature frames of one clip, shape (T, features), float32; the clip is padded/trimmed."""
    import librosa  # imported here: librosa pulls in numba, which the rest of edgefptt avoids

    clip = pad_or_trim(audio, settings.clip_samples)
    mel = librosa.feature.melspectrogram(
        y=clip,
        sr=settings.sample_rate,
        n_fft=settings.n_fft,
        hop_length=settings.hop_length,
        win_length=settings.win_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=settings.mels,
        fmin=0.0,
        fmax=settings.sample_rate / 2,
        htk=True,
        norm=None,
    )
    log_mel = np.log(mel + LOG_FLOOR)
    if settings.kind == "mfcc":
        out = librosa.feature.mfcc(S=log_mel, n_mfcc=settings.features, dct_type=2, norm="ortho")
    else:
        out = log_mel
    return np.ascontiguousarray(out.T[: settings.num_frames], dtype=np.float32)
