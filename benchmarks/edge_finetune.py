"""Personalization on the edge: a keyword spotter fine-tuned in C for a voice it never heard.

The scenario of edge learning: a model is pretrained on the host, shipped to a device, and
the device adapts it to its one user from a handful of that user's clips.

1. Corpus (SYNTHETIC, espeak-ng): the ten Speech Commands keywords spoken by espeak-ng voices,
   each voice at every speed and pitch of ``edgefptt.data.synthetic_speech`` (a "speaker" is
   one voice/speed/pitch), written in the Speech Commands v2 layout and read back with
   ``edgefptt.data.speech_commands.load``: the project's MFCC features (40 x 100 frames) and its
   normalisation (per coefficient, with the pretraining clips' mean and standard deviation).
2. Pretraining on the host (``fit``; FPTT, one LSTM layer, last-step readout: the edge
   layout) on every voice but one. One speed/pitch combination of each pretraining voice is
   kept out as a validation set (seen voices, unseen speaker).
3. The held-out voice (default ``en+whisper``, espeak-ng's whispering variant: the user) is
   split by speaker: a few speed/pitch combinations give the fine-tuning clips (one clip of
   each word each, the user's "enrolment"), the others are the held-out test clips, so no
   fine-tuning recording is repeated in the test set.
4. The checkpoint is exported with the C learner (exact schedule, fp32) and built for the host
   and for RISC-V. The C learner evaluates it on the held-out clips, fine-tunes it on the
   enrolment clips and evaluates again. The RISC-V build does the same under qemu-riscv64
   (slow: fewer epochs); it must give the numbers of the host build made with ``PORTABLE=1``
   (baseline ISA, no FMA contraction: the RISC-V build's float32 operations), which runs
   every epoch; the default host build (-march=native, FMA) rounds differently and is
   compared too. The host does the
   same fine-tune with ``--recipe device`` (torch). Also: the device's RAM (arena + one
   batch), its state file (two slots) and seconds per epoch.

Prints one JSON document on stdout (progress on stderr). ``--quick`` is a smaller corpus and
fewer epochs (about two minutes on two cores); the corpus, its features and the builds live in
``--work-dir`` (default: a temporary directory), where a later run reuses the corpus and the
feature cache.

    python benchmarks/edge_finetune.py [--quick] [--work-dir DIR] [--holdout-voice en+whisper]
        [--shots 3] [--epochs 20] [--lr 0.05] [--lr-step 3:0.5] [--partitions 10] [--batch 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgefptt.codegen import (
    LEARNERS,
    checkpoint_params,
    export_c,
    make,
    run_learner,
    tool_missing,
)
from edgefptt.config import make_specs
from edgefptt.data import speech_commands
from edgefptt.data.base import SequenceData
from edgefptt.data.speech_commands import KEYWORDS, SYNTHETIC_MARKER, TESTING_LIST, VALIDATION_LIST
from edgefptt.data.synthetic_speech import (
    PITCHES,
    SAMPLE_RATE,
    SPEEDS,
    VOICES,
    Speaker,
    find_espeak,
    place_in_clip,
    speak,
)
from edgefptt.errors import EdgeFPTTError
from edgefptt.learn.samples import write_samples
from edgefptt.learn.state import param_count, state_file_bytes
from edgefptt.train.config import TrainConfig, make_config
from edgefptt.train.loop import Trainer, evaluate, fit

MANIFEST = "corpus.json"
CORPUS_VERSION = 1
# One speed/pitch combination of every pretraining voice is validation (unseen speaker).
VALIDATION_SPEAKER = (160, 50)
ACC_KEYS = ("train_acc", "test_acc")
# RISC-V and the portable host build do the same float32 operations: they must agree to this.
SAME_BUILD_TOLERANCE = 1e-6
HOST_EPOCH_KEYS = ("epoch", "lr", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                   "wall_s", "eval_s")  # fmt: skip
STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- settings
def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small corpus, few epochs (~2 min)")
    parser.add_argument("--work-dir", help="corpus, features and builds (default: a temp dir)")
    parser.add_argument("--holdout-voice", default="en+whisper", help="the user's espeak voice")
    parser.add_argument("--words", default=",".join(KEYWORDS), help="comma-separated keywords")
    parser.add_argument("--repeats", type=int, help="clips per word and speaker (2; quick 1)")
    parser.add_argument("--shots", type=int, default=3, help="fine-tuning clips per word")
    parser.add_argument("--hidden", type=int, default=64, help="LSTM units H")
    parser.add_argument("--partitions", type=int, default=10, help="FPTT partitions K")
    parser.add_argument("--batch", type=int, default=10, help="device batch size B")
    parser.add_argument("--pretrain-epochs", type=int, help="host pretraining epochs (10; quick 4)")
    parser.add_argument("--pretrain-lr", type=float, default=5e-3, help="host Adam lr")
    parser.add_argument("--epochs", type=int, help="fine-tuning epochs (20; quick 10)")
    parser.add_argument("--lr", type=float, default=0.05, help="fine-tuning SGD learning rate")
    parser.add_argument("--lr-step", default="3:0.5", help="E:F, lr times F every E epochs")
    parser.add_argument(
        "--riscv-epochs", type=int, help="fine-tuning epochs under qemu (4; quick 2)"
    )
    parser.add_argument("--no-riscv", action="store_true", help="skip the RISC-V build")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    defaults = {"repeats": (2, 1), "pretrain_epochs": (10, 4), "epochs": (20, 10)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.riscv_epochs is None:
        args.riscv_epochs = 2 if args.quick else 4
    args.riscv_epochs = min(args.riscv_epochs, args.epochs)
    args.words = [w.strip() for w in args.words.split(",") if w.strip()]
    combos = len(SPEEDS) * len(PITCHES)
    if not 1 <= args.shots < combos:
        parser.error(f"--shots must be between 1 and {combos - 1}")
    if args.shots * len(args.words) < args.batch:
        parser.error("--shots x words must be at least one batch (--batch)")
    return args


# ---------------------------------------------------------------------------- corpus
def speakers_of(voice: str) -> list[Speaker]:
    return [Speaker(voice, s, p) for s in SPEEDS for p in PITCHES]


def pretraining_voices(holdout: str) -> list[str]:
    return [v for v in VOICES if v != holdout]


def finetune_speakers(holdout: str, shots: int, seed: int) -> list[Speaker]:
    """The user's enrolment speakers: ``shots`` speed/pitch combinations, seeded."""
    every = speakers_of(holdout)
    order = np.random.default_rng([seed, 0xE4]).permutation(len(every))
    return sorted((every[i] for i in order[:shots]), key=lambda s: (s.speed, s.pitch))


def corpus_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "version": CORPUS_VERSION,
        "words": args.words,
        "pretraining_voices": pretraining_voices(args.holdout_voice),
        "held_out_voice": args.holdout_voice,
        "speeds": list(SPEEDS),
        "pitches": list(PITCHES),
        "repeats": args.repeats,
        "validation_speaker": list(VALIDATION_SPEAKER),
        "seed": args.seed,
    }


def clip_rng(seed: int, word: str, speaker: Speaker, repeat: int) -> np.random.Generator:
    """Placement, gain and noise of one clip: independent of which other voices exist."""
    return np.random.default_rng(
        [seed, zlib.crc32(word.encode()), zlib.crc32(speaker.voice.encode()),
         speaker.speed, speaker.pitch, repeat]
    )  # fmt: skip


def make_corpus(root: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Write (or reuse) the corpus in the GSCv2 layout; returns its manifest."""
    import soundfile

    manifest_path = root / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("settings") == settings:
            log(f"corpus: reusing {root} ({len(manifest['clips'])} clips)")
            return {**manifest, "reused": True}
    if root.exists():
        if not (root / SYNTHETIC_MARKER).is_file():
            raise EdgeFPTTError(f"{root} exists and is not a synthetic corpus; not touching it")
        shutil.rmtree(root)
    espeak = find_espeak()
    started = time.perf_counter()
    root.mkdir(parents=True)
    (root / SYNTHETIC_MARKER).write_text("SYNTHETIC DATASET (being written)\n")
    voices = [*settings["pretraining_voices"], settings["held_out_voice"]]
    jobs = [
        (word, speaker, repeat)
        for voice in voices
        for speaker in speakers_of(voice)
        for word in settings["words"]
        for repeat in range(settings["repeats"])
    ]
    for word in settings["words"]:
        (root / word).mkdir()

    def render(job: tuple[str, Speaker, int]) -> tuple[str, dict[str, Any]]:
        word, speaker, repeat = job
        rng = clip_rng(settings["seed"], word, speaker, repeat)
        clip = place_in_clip(speak(espeak, word, speaker), rng)
        rel = f"{word}/{speaker.speaker_id}_nohash_{repeat}.wav"
        soundfile.write(str(root / rel), clip, SAMPLE_RATE, subtype="PCM_16")
        info = {"voice": speaker.voice, "speed": speaker.speed, "pitch": speaker.pitch}
        return rel, {**info, "word": word, "repeat": repeat}

    clips: dict[str, dict[str, Any]] = {}
    log(f"corpus: speaking {len(jobs)} clips with espeak-ng into {root}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, (rel, info) in enumerate(pool.map(render, jobs), start=1):
            clips[rel] = info
            if n % 500 == 0:
                log(f"corpus: {n}/{len(jobs)} clips")
    held, validation = settings["held_out_voice"], tuple(settings["validation_speaker"])
    testing = sorted(p for p, c in clips.items() if c["voice"] == held)
    checking = sorted(
        p for p, c in clips.items() if c["voice"] != held and (c["speed"], c["pitch"]) == validation
    )
    (root / TESTING_LIST).write_text("".join(f"{p}\n" for p in testing))
    (root / VALIDATION_LIST).write_text("".join(f"{p}\n" for p in checking))
    (root / SYNTHETIC_MARKER).write_text(
        "SYNTHETIC DATASET - not Google Speech Commands.\n\n"
        "Written by benchmarks/edge_finetune.py with espeak-ng (formant speech synthesis) in\n"
        "the Google Speech Commands v2 layout. testing_list.txt: the held-out voice (the user);\n"
        "validation_list.txt: one speed/pitch of each pretraining voice.\n\n"
        f"{json.dumps(settings, indent=2)}\n"
    )
    manifest = {"settings": settings, "clips": clips, "generation_s": time.perf_counter() - started}
    manifest_path.write_text(json.dumps(manifest))  # written last: a complete corpus
    log(f"corpus: {len(clips)} clips in {manifest['generation_s']:.1f} s")
    return {**manifest, "reused": False}


# ---------------------------------------------------------------------------- features
def load_splits(
    root: Path, config: TrainConfig, manifest: dict[str, Any]
) -> tuple[SequenceData, np.ndarray, np.ndarray, list[dict[str, Any]], dict[str, Any]]:
    """Pretraining data (train, validation) and the held-out voice's clips, as the loader does.

    The loader normalises every split with the training split's statistics; the two calls
    below share that split (and the feature cache), so the held-out clips are normalised with
    the pretraining clips' mean and standard deviation, as a device would have to.
    """
    options = config.speech_options()
    started = time.perf_counter()
    pre = speech_commands.load(root, dataclasses.replace(options, eval_split="validation"))
    user = speech_commands.load(root, dataclasses.replace(options, eval_split="test"))
    seconds = time.perf_counter() - started
    if pre.skipped or user.skipped:
        raise EdgeFPTTError(f"the loader skipped clips: {(pre.skipped + user.skipped)[:3]}")
    if not torch.equal(pre.train_x, user.train_x):
        raise EdgeFPTTError("the two loads disagree on the pretraining split")
    # which row is which clip: the loader's index, in its order (nothing was skipped)
    layout = speech_commands.read_layout(root)
    _, index = speech_commands.build_index(layout, options)
    rows = [manifest["clips"][clip.path] for clip in index["test"]]
    labels = [int(v) for v in user.test_y]
    if len(rows) != len(labels) or any(
        config_word(options, r) != y for r, y in zip(rows, labels, strict=True)
    ):
        raise EdgeFPTTError("the held-out clips do not line up with the loader's index")
    stats = {
        "kind": options.features.kind,
        "settings": options.features.model_dump(),
        "T": pre.seq_len,
        "I": pre.input_size,
        "normalisation": "per coefficient, mean and std of the pretraining training clips "
        "(speech_commands.load); applied unchanged to the held-out voice",
        "computed_clips": pre.stats["computed_clips"] + user.stats["computed_clips"],
        "cached_clips": pre.stats["cached_clips"] + user.stats["cached_clips"],
        "load_s": seconds,
    }
    return pre, user.test_x.numpy(), user.test_y.numpy(), rows, stats


def config_word(options: speech_commands.SpeechOptions, row: dict[str, Any]) -> int:
    return list(options.words).index(row["word"])


# ---------------------------------------------------------------------------- runs
def accuracy_points(value: float) -> float:
    return round(100.0 * value, 3)


def c_record(epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds")
    return [{k: e[k] for k in keys} for e in epochs]


def run_c_learner(
    binary: Path,
    finetune: Path,
    test: Path,
    args: argparse.Namespace,
    epochs: int,
    *,
    qemu: bool,
) -> dict[str, Any]:
    """Evaluate, fine-tune with the test set each epoch, and fine-tune alone (timing)."""
    timeout = 3600
    common = ["--lr", f"{args.lr}", "--lr-step", args.lr_step, "--seed", str(args.seed), "-t", "1"]
    started = time.perf_counter()
    before = run_learner(
        binary, "--evaluate", "--test", str(test), "-t", "1", qemu=qemu, timeout_s=timeout
    ).epochs[0]
    tuned = run_learner(
        binary, "--train", str(finetune), "--test", str(test), "--epochs", str(epochs), *common,
        qemu=qemu, timeout_s=timeout,
    ).epochs  # fmt: skip
    alone = run_learner(
        binary, "--train", str(finetune), "--epochs", str(epochs), *common,
        qemu=qemu, timeout_s=timeout,
    ).epochs  # fmt: skip
    after = tuned[-1]
    return {
        "binary": binary.name,
        **(
            {"emulation": "qemu-riscv64 (user mode) on this host: not a RISC-V core's speed"}
            if qemu
            else {}
        ),
        "epochs_run": epochs,
        "before": {"test_acc": before["test_acc"], "test_loss": before["test_loss"]},
        "after": {"test_acc": after["test_acc"], "test_loss": after["test_loss"]},
        "seconds_per_epoch_with_test": float(np.median([e["seconds"] for e in tuned])),
        "seconds_per_epoch_train_only": float(np.median([e["seconds"] for e in alone])),
        "confusion_after": after["confusion"],
        "epochs": c_record(tuned),
        "train_only_losses": [e["train_loss"] for e in alone],
        # the test set only reads the model: the run without it must train identically
        "train_only_run_identical": [e["train_loss"] for e in alone]
        == [e["train_loss"] for e in tuned],
        "wall_s": time.perf_counter() - started,
    }


def relative(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-30)


def compare(
    reference: dict[str, Any], other: dict[str, Any], acc_keys: tuple[str, str] = ACC_KEYS
) -> dict[str, Any]:
    """``other`` against ``reference``, the C learner's record, on the epochs both ran.

    Per epoch: relative differences of the train and test losses, and whether the train and
    test accuracies are equal; also the evaluation of the exported model (before training).
    """
    rows = []
    for a, b in zip(reference["epochs"], other["epochs"], strict=False):
        rows.append(
            {
                "epoch": a["epoch"],
                "train_loss_rel": relative(a["train_loss"], b["train_loss"]),
                "test_loss_rel": relative(a["test_loss"], b["test_loss"]),
                "same_accuracies": a["train_acc"] == b[acc_keys[0]]
                and a["test_acc"] == b[acc_keys[1]],
            }
        )
    before_rel = relative(reference["before"]["test_loss"], other["before"]["test_loss"])
    worst = max([before_rel, *(max(r["train_loss_rel"], r["test_loss_rel"]) for r in rows)])
    return {
        "epochs_compared": len(rows),
        "evaluate_test_loss_rel": before_rel,
        "max_loss_rel": worst,
        "epochs_with_same_accuracies": sum(r["same_accuracies"] for r in rows),
        "same_before_accuracy": reference["before"]["test_acc"] == other["before"]["test_acc"],
        "per_epoch": rows,
    }


def host_finetune(args: argparse.Namespace, checkpoint: Path, data: SequenceData) -> dict[str, Any]:
    """``edgefptt train --recipe device --init CHECKPOINT`` on the enrolment clips, in torch."""
    config = make_config(
        recipe="device", init=str(checkpoint), hidden=args.hidden, partitions=args.partitions,
        batch_size=args.batch, epochs=args.epochs, lr=args.lr, lr_step=args.lr_step,
        seed=args.seed,
    )  # fmt: skip
    # the model the run starts from (the checkpoint's W_bar, one bias per gate), before training
    before_loss, before_acc = evaluate(Trainer(config, data).model, data)
    started = time.perf_counter()
    result = fit(config, data)
    history = result.history
    return {
        "recipe": "device",
        "torch_threads": torch.get_num_threads(),
        "before": {"test_acc": before_acc, "test_loss": before_loss},
        "after": {"test_acc": history[-1]["test_accuracy"], "test_loss": history[-1]["test_loss"]},
        "train_s_per_epoch": float(np.median([h["wall_s"] for h in history])),
        "eval_s_per_epoch": float(np.median([h["eval_s"] for h in history])),
        "epochs": [{k: h[k] for k in HOST_EPOCH_KEYS} for h in history],
        "wall_s": time.perf_counter() - started,
    }


def espeak_version() -> str:
    done = subprocess.run([find_espeak(), "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().split("  Data at")[0]


# ---------------------------------------------------------------------------- main
def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    torch.manual_seed(args.seed)
    settings = corpus_settings(args)
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    root = work / f"corpus-{key}"
    manifest = make_corpus(root, settings)

    pretrain_config = make_config(
        dataset="speech_commands", data_dir=str(root), task="custom", words=",".join(args.words),
        unknown_fraction=0.0, silence_fraction=0.0, cache_dir=str(work / "features"),
        algorithm="fptt", partitions=args.partitions, cell="lstm", layers=1, readout="last",
        hidden=args.hidden, epochs=args.pretrain_epochs, lr=args.pretrain_lr, batch_size=32,
        seed=args.seed,
    )  # fmt: skip
    log("features: loading with speech_commands.load (MFCC, cached in the work dir)")
    pre, user_x, user_y, rows, features = load_splits(root, pretrain_config, manifest)
    num_classes = pre.num_classes
    enrol = {
        (s.speed, s.pitch) for s in finetune_speakers(args.holdout_voice, args.shots, args.seed)
    }
    is_enrol = np.array(
        [(r["speed"], r["pitch"]) in enrol and r["repeat"] == 0 for r in rows], dtype=bool
    )
    is_test = np.array([(r["speed"], r["pitch"]) not in enrol for r in rows], dtype=bool)
    ft_x, ft_y = user_x[is_enrol], user_y[is_enrol]
    test_x, test_y = user_x[is_test], user_y[is_test]
    log(
        f"data: {len(pre.train_y)} pretraining clips, {len(pre.test_y)} validation, "
        f"{len(ft_y)} fine-tuning and {len(test_y)} test clips of {args.holdout_voice}"
    )

    # ---- pretraining on the host
    pretrain_dir = work / "pretrain"
    shutil.rmtree(pretrain_dir, ignore_errors=True)
    log(f"pretrain: {args.pretrain_epochs} epochs, H={args.hidden}, K={args.partitions}")
    started = time.perf_counter()
    pretrained = fit(pretrain_config, pre, out_dir=pretrain_dir)
    pretrain_s = time.perf_counter() - started
    checkpoint = Path(pretrained.checkpoint or pretrain_dir / "checkpoint.pt")
    log(f"pretrain: validation accuracy {pretrained.final_test_accuracy:.3f} ({pretrain_s:.0f} s)")

    # ---- the C learner
    params, sizes = checkpoint_params(checkpoint)
    seq_len, inputs = int(pre.seq_len), int(pre.input_size)
    net, spec = make_specs(
        None, input_size=inputs, hidden_size=sizes["hidden_size"], num_classes=num_classes,
        batch_size=args.batch, seq_len=seq_len, partitions=args.partitions, dtype="fp32",
        schedule="exact", learning_rate=args.lr,
    )  # fmt: skip
    out = work / "c"
    shutil.rmtree(out, ignore_errors=True)
    export = export_c(net, spec, out, params=params, params_source=f"checkpoint {checkpoint}")
    samples = work / "samples"
    samples.mkdir(exist_ok=True)
    finetune_file, test_file = samples / "finetune.efs", samples / "test.efs"
    finetune_bytes = write_samples(finetune_file, ft_x, ft_y, num_classes)
    write_samples(test_file, test_x, test_y, num_classes)
    missing = tool_missing("host")
    if missing is not None:
        raise EdgeFPTTError(f"cannot build the C learner for the host: {missing}")
    started = time.perf_counter()
    make(out, "host")
    build_s = {"host": time.perf_counter() - started}
    log("C learner (host build): evaluate, fine-tune")
    device = run_c_learner(out / LEARNERS["host"], finetune_file, test_file, args, args.epochs,
                           qemu=False)  # fmt: skip
    before_acc, after_acc = device["before"]["test_acc"], device["after"]["test_acc"]
    log(f"C learner (host build): {before_acc:.3f} -> {after_acc:.3f}")
    # The same program for the compiler's baseline ISA without FMA contraction: the float32
    # operations of the RISC-V build, so it shows all epochs of the RISC-V numbers at host speed.
    portable_out = work / "c_portable"
    shutil.rmtree(portable_out, ignore_errors=True)
    export_c(net, spec, portable_out, params=params, params_source=f"checkpoint {checkpoint}")
    started = time.perf_counter()
    make(portable_out, "host", portable=True)
    build_s["host_portable"] = time.perf_counter() - started
    log("C learner (host build, PORTABLE=1): evaluate, fine-tune")
    portable = run_c_learner(portable_out / LEARNERS["host"], finetune_file, test_file, args,
                             args.epochs, qemu=False)  # fmt: skip
    portable["against_host_build"] = compare(device, portable)

    riscv: dict[str, Any]
    riscv_missing = "--no-riscv" if args.no_riscv else tool_missing("riscv")
    if riscv_missing is None:
        started = time.perf_counter()
        make(out, "riscv")
        build_s["riscv"] = time.perf_counter() - started
        log(f"C learner (RISC-V build, qemu-riscv64): {args.riscv_epochs} epochs")
        riscv = run_c_learner(out / LEARNERS["riscv"], finetune_file, test_file, args,
                              args.riscv_epochs, qemu=True)  # fmt: skip
        same = compare(portable, riscv)
        riscv["against_portable_host_build"] = same
        riscv["against_host_build"] = compare(device, riscv)
        riscv["same_numbers_as_host_build"] = (
            same["max_loss_rel"] <= SAME_BUILD_TOLERANCE
            and same["same_before_accuracy"]
            and same["epochs_with_same_accuracies"] == same["epochs_compared"]
        )
        riscv["tolerance"] = SAME_BUILD_TOLERANCE
        log(
            f"C learner (RISC-V build): loss differences {same['max_loss_rel']:.1e} against "
            f"the portable host build, {riscv['against_host_build']['max_loss_rel']:.1e} "
            "against the default one"
        )
    else:
        riscv = {"skipped": riscv_missing}

    # ---- the host, same fine-tune (torch, device recipe)
    log("host: the same fine-tune with --recipe device")
    data = SequenceData(
        f"synthetic-speech-{args.holdout_voice}", torch.from_numpy(ft_x),
        torch.from_numpy(ft_y), torch.from_numpy(test_x), torch.from_numpy(test_y), num_classes,
    )  # fmt: skip
    host = host_finetune(args, checkpoint, data)
    torch_keys = ("train_accuracy", "test_accuracy")
    host["against_c_host_build"] = compare(device, host, torch_keys)
    host["against_c_portable_host_build"] = compare(portable, host, torch_keys)
    log(f"host: {host['before']['test_acc']:.3f} -> {host['after']['test_acc']:.3f}")

    # ---- memory
    batch_bytes = args.batch * seq_len * inputs * 4 + 4 * args.batch
    memory = {
        "arena_bytes": export.arena_bytes,
        "batch_bytes": batch_bytes,
        "ram_bytes": export.arena_bytes + batch_bytes,
        "state_file_bytes": state_file_bytes(inputs, args.hidden, num_classes, "fp32"),
        "parameters": param_count(inputs, args.hidden, num_classes),
        "finetune_file_bytes": finetune_bytes,
        "what": "RAM = arena (lifetime plan: weights, gradients, FPTT state, activations of "
        "one partition) + one batch B*T*I*4 + 4*B labels; the state file (two slots, flash "
        "on a device) holds W, W_bar and lambda",
    }

    # ---- targets
    gain = accuracy_points(device["after"]["test_acc"] - device["before"]["test_acc"])
    host_gain = accuracy_points(host["after"]["test_acc"] - host["before"]["test_acc"])
    gap = accuracy_points(device["after"]["test_acc"] - host["after"]["test_acc"])
    inputs_of_targets = {
        "device_before_points": accuracy_points(device["before"]["test_acc"]),
        "device_after_points": accuracy_points(device["after"]["test_acc"]),
        "device_gain_points": gain,
        "device_portable_build_after_points": accuracy_points(portable["after"]["test_acc"]),
        "host_before_points": accuracy_points(host["before"]["test_acc"]),
        "host_after_points": accuracy_points(host["after"]["test_acc"]),
        "host_gain_points": host_gain,
        "device_minus_host_after_points": gap,
        "test_clips": len(test_y),
    }
    targets = {
        "accuracy_gain_at_least_10_points": gain >= 10.0,
        "device_within_2_points_of_host": abs(gap) <= 2.0,
    }
    notes = [
        "SYNTHETIC corpus (espeak-ng formant speech): a check of the personalization "
        "pipeline, not a prediction for real users or for Google Speech Commands.",
        "Accuracies are on the held-out voice's test clips, whose speed/pitch combinations are "
        "disjoint from the fine-tuning clips'. The held-out voice, K, lr and lr step were "
        "chosen by trying a few on this corpus (seed 0) and looking at these same test clips "
        "(there is no separate validation set of the held-out voice); --seed N draws another "
        "corpus, enrolment and initialisation to see the spread.",
        "C seconds per epoch 'with test' include evaluating every test clip after the epoch; "
        "'train only' is a second run without a test file (same seed, same training). Seconds "
        "per epoch are medians over the epochs; the C runs one thread, torch its default.",
    ]
    if not targets["accuracy_gain_at_least_10_points"]:
        notes.append(f"target missed: the C learner gained {gain} points (< 10)")
    if not targets["device_within_2_points_of_host"]:
        notes.append(f"target missed: device and host differ by {gap} points after fine-tuning")
    if riscv_missing is None:
        native = riscv["against_host_build"]
        notes.append(
            "The RISC-V build is compared with the host build made with PORTABLE=1 (baseline "
            "ISA, no FMA contraction: the RISC-V build's float32 operations), to "
            f"{SAME_BUILD_TOLERANCE:g} relative: "
            + ("it agrees." if riscv["same_numbers_as_host_build"] else "IT DOES NOT AGREE.")
            + " The default host build (-march=native, FMA) rounds differently; fine-tuning "
            "carries such differences forward, and a clip near a decision boundary can flip: "
            f"against it the RISC-V losses differ by up to {native['max_loss_rel']:.1e} "
            f"relative, with equal accuracies in {native['epochs_with_same_accuracies']} of "
            f"{native['epochs_compared']} epochs."
        )
    if riscv_missing is None and riscv["epochs_run"] < args.epochs:
        notes.append(
            f"the RISC-V build ran {args.riscv_epochs} of {args.epochs} epochs under qemu "
            "(emulation is slow); it is compared with the host build's first epochs"
        )
    return {
        "benchmark": "edge_finetune",
        "scenario": "personalization: pretrain on the host, fine-tune on the device for an "
        "unseen voice from a few clips",
        "synthetic": True,
        "corpus": {
            "what": "SYNTHETIC espeak-ng speech in the GSCv2 layout (not Google Speech Commands)",
            "generator": espeak_version(),
            "words": args.words,
            "pretraining_voices": settings["pretraining_voices"],
            "held_out_voice": args.holdout_voice,
            "speeds_wpm": list(SPEEDS),
            "pitches": list(PITCHES),
            "repeats": args.repeats,
            "validation_speaker": list(VALIDATION_SPEAKER),
            "finetune_speakers": [list(s) for s in sorted(enrol)],
            "clips": {
                "pretrain_train": len(pre.train_y),
                "pretrain_validation": len(pre.test_y),
                "held_out_voice": len(rows),
                "finetune": len(ft_y),
                "finetune_per_word": args.shots,
                "held_out_test": len(test_y),
            },
            "directory": str(root),
            "reused": manifest["reused"],
            "generation_s": manifest["generation_s"],
        },
        "features": features,
        "settings": {
            "quick": args.quick,
            "seed": args.seed,
            "hidden": args.hidden,
            "partitions": args.partitions,
            "batch_size": args.batch,
            "classes": num_classes,
            "pretrain": {
                "epochs": args.pretrain_epochs,
                "optimizer": "adam",
                "lr": args.pretrain_lr,
                "schedule": "cosine",
                "batch_size": 32,
                "algorithm": "fptt",
                "loss_weighting": pretrain_config.loss_weighting,
            },
            "finetune": {
                "epochs": args.epochs,
                "lr": args.lr,
                "lr_step": args.lr_step,
                "recipe": "device (FPTT, plain SGD, last-partition loss)",
                "riscv_epochs": args.riscv_epochs if riscv_missing is None else 0,
            },
            "dtype": "fp32",
            "schedule": "exact",
        },
        "pretrain": {
            "validation_accuracy": pretrained.final_test_accuracy,
            "validation_what": "pretraining voices at an unseen speed/pitch",
            "train_s_per_epoch": float(np.median([h["wall_s"] for h in pretrained.history])),
            "wall_s": pretrain_s,
            "checkpoint": str(checkpoint),
        },
        "device": {
            "memory": memory,
            "build_s": build_s,
            "host_build": device,
            "host_build_portable": portable,
            "riscv_qemu": riscv,
        },
        "host": host,
        "target_inputs": inputs_of_targets,
        "targets": targets,
        "notes": notes,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "torch": torch.__version__,
        },
    }


def main() -> int:
    args = parse_args()
    try:
        if args.work_dir is not None:
            work = Path(args.work_dir)
            work.mkdir(parents=True, exist_ok=True)
            document = run(args, work)
        else:
            with tempfile.TemporaryDirectory(prefix="edge_finetune_") as tmp:
                document = run(args, Path(tmp))
    except EdgeFPTTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    document["wall_s"] = time.perf_counter() - STARTED
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
