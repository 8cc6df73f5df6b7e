"""Keyword spotting on the SYNTHETIC espeak-ng corpus: feature speed, accuracy and memory.

Writes a synthetic corpus in the Speech Commands v2 layout (espeak-ng needed), then measures
feature extraction in clips per second with an empty cache (cold) and with the cache filled
(cached), and trains the 12-class task with bptt and with fptt at K in {1, 4, 10}, reporting
test accuracy and peak activation memory. Prints one JSON document. The corpus is synthetic:
its accuracies are a check of the pipeline, not a prediction for GSCv2.

    python benchmarks/speech.py [--speakers 24] [--epochs 15] [--hidden 128] [--ks 1,4,10]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgefptt.data import speech_commands
from edgefptt.data.audio_features import compute_features
from edgefptt.data.synthetic_speech import make_synthetic_speech
from edgefptt.errors import UserInputError
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit


def feature_speed(root: Path, cache: Path) -> dict:
    options = speech_commands.SpeechOptions(cache_dir=str(cache))
    # librosa compiles its kernels (numba) on first use: a one-off per process, timed apart
    started = time.perf_counter()
    compute_features(np.zeros(16_000, dtype=np.float32), options.features)
    result: dict = {"first_call_s": time.perf_counter() - started}
    for label in ("cold", "cached"):
        started = time.perf_counter()
        data = speech_commands.load(root, options)
        seconds = time.perf_counter() - started
        clips = data.stats["train_clips"] + data.stats["eval_clips"]
        result[label] = {
            "clips": clips,
            "computed_clips": data.stats["computed_clips"],
            "cached_clips": data.stats["cached_clips"],
            "wall_s": seconds,
            "clips_per_s": clips / seconds,
        }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--ks", default="1,4,10")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "synthetic_gsc", Path(tmp) / "cache"
        try:
            corpus = make_synthetic_speech(root, speakers=args.speakers, seed=args.seed)
        except UserInputError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        speed = feature_speed(root, cache)
        runs = []
        variants = [("bptt", 1)] + [("fptt", int(k)) for k in args.ks.split(",")]
        for algorithm, k in variants:
            config = make_config(
                dataset="speech_commands",
                data_dir=str(root),
                cache_dir=str(cache),
                algorithm=algorithm,
                partitions=k,
                hidden=args.hidden,
                epochs=args.epochs,
                batch_size=16,
                seed=args.seed,
            )
            result = fit(config)
            runs.append(
                {
                    "algorithm": algorithm,
                    "partitions": k,
                    "test_accuracy": result.final_test_accuracy,
                    "best_test_accuracy": max(r["test_accuracy"] for r in result.history),
                    "peak_activation_bytes": result.peak_activation_bytes,
                    "param_state_bytes": result.param_state_bytes,
                    "epoch_wall_s": min(r["wall_s"] for r in result.history),
                }
            )
    bptt_bytes = runs[0]["peak_activation_bytes"]
    for run in runs:
        run["activation_vs_bptt"] = run["peak_activation_bytes"] / bptt_bytes
    document = {
        "corpus": "SYNTHETIC espeak-ng speech in the GSCv2 layout (not Google Speech Commands)",
        "corpus_clips": corpus.clips,
        "corpus_generation_s": corpus.wall_s,
        "task": "12 (10 keywords + unknown + silence), 40 MFCC x 100 frames",
        "chance_accuracy": 1 / 12,
        "feature_extraction": speed,
        "epochs": args.epochs,
        "hidden": args.hidden,
        "runs": runs,
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
    }
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
