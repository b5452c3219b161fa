"""Run the benchmarks, print their tables and update benchmarks/RESULTS.md.

    python -m benchmarks                 # every benchmark this machine can run
    python -m benchmarks --only throughput --repeats 5
    python -m benchmarks --smoke --data-dir DIR --results none   # seconds; checks that it runs
    python -m benchmarks --gpu-check     # on a GPU machine: every CUDA path once (benchmarks/gpu_check.py)
    python -m benchmarks --gpu-check --device cpu   # its dry run, what the tests run

On a CPU machine: throughput (with each model's share of the matmul rate), precision
and layout of a training step, profile and accuracy (project against standard, and
bf16 against fp32), study overhead and the cost of measuring the mechanism (variance
shift, BN re-estimation). With a CUDA GPU: the same on the GPU, and GPU sharing;
study overhead too when Ray is installed. RESULTS.md keeps one section per device and
benchmark, so a run replaces only the sections it measured (a CPU run keeps the GPU
numbers, an `--only accuracy` run keeps the throughput table).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import (accuracy, gpu_check, gpu_sharing, mechanism_overhead, precision, profile_step, study_overhead,
                        throughput)
from benchmarks.common import machine, versions
from benchmarks.sections import SECTIONS, TITLES, update_results

RESULTS = Path(__file__).with_name("RESULTS.md")
BENCHMARKS = ("throughput", "precision", "profile", "accuracy", "overhead", "mechanism", "sharing")


@dataclass(frozen=True)
class Settings:
    """How much each benchmark does on one kind of device."""

    images: dict  # training images per throughput epoch, per model size (None: the whole 54k split)
    batch_size: int
    repeats: int
    workers: list  # DataLoader worker counts tried for the standard pipeline
    accuracy_seeds: int
    accuracy_epochs: int
    accuracy_images: int | None
    overhead_trials: int
    sharing_counts: list
    sharing_epochs: int
    # Mechanism overhead: (model, training images or None for all, validation images, batch size, max_epochs).
    mechanism_sizes: list = ()
    val_images: int = 6000  # the fixed validation split
    # Precision and layout: the models, (threads, batch size) pairs, timed steps, and the models also timed
    # through torch.compile (each compilation takes 20-60 s).
    precision_models: list = ("medium", "large")
    precision_sizes: list = ((1, 64), (2, 256))  # the quick and the full budget's
    precision_steps: int = 4
    precision_compiled: tuple = ("medium", "large")


SETTINGS = {
    # A 2-core machine: the whole run takes about 45 minutes (36 without study overhead and mechanism).
    # The medium model's epochs are whole (54,000 images), so its ratio holds for a real epoch.
    "cpu": Settings({"small": 2048, "medium": None, "large": 2048}, batch_size=64, repeats=3, workers=[0, 2],
                    accuracy_seeds=5, accuracy_epochs=3, accuracy_images=3000, overhead_trials=12,
                    sharing_counts=[], sharing_epochs=0,
                    # The quick budget's sizes, and the full budget's for the medium model.
                    mechanism_sizes=[("medium", 1500, 1000, 64, 4), ("large", 1500, 1000, 64, 4),
                                     ("medium", None, 6000, 256, 30)]),
    "cuda": Settings({"small": None, "medium": None, "large": None}, batch_size=256, repeats=5, workers=[4, 8],
                     accuracy_seeds=3, accuracy_epochs=10, accuracy_images=None, overhead_trials=12,
                     sharing_counts=[1, 2, 4, 8], sharing_epochs=3,
                     mechanism_sizes=[("medium", None, 6000, 256, 30), ("large", None, 6000, 256, 30)],
                     precision_models=["small", "medium", "large"], precision_sizes=[(1, 256)], precision_steps=20),
    # Tests: tiny synthetic data, one repeat; checks that everything runs, not speed.
    "smoke": Settings({"small": 128, "medium": 128, "large": 64}, batch_size=32, repeats=1, workers=[0],
                      accuracy_seeds=2, accuracy_epochs=1, accuracy_images=128, overhead_trials=12,
                      sharing_counts=[1, 2], sharing_epochs=1, mechanism_sizes=[("small", 128, 100, 32, 3)],
                      val_images=100, precision_models=["small"], precision_sizes=[(1, 16)], precision_steps=1,
                      precision_compiled=()),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--data-dir", help="directory with the FashionMNIST IDX files")
    parser.add_argument("--repeats", type=int, help="measurements per figure (the median is reported)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the project's model too")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
    parser.add_argument("--results", help="markdown file to update, or 'none' (default: benchmarks/RESULTS.md; "
                        "for the GPU check's CPU dry run, none)")
    parser.add_argument("--gpu-check", action="store_true",
                        help="every CUDA path once in minutes, with only torch and torchvision (see benchmarks/"
                        "gpu_check.py); with --device cpu, its dry run at tiny sizes")
    parser.add_argument("--rates", help="with --gpu-check: where to write the rates `study run --dry-run --gpus N` "
                        "reads, or 'none' (default: benchmarks/gpu_rates.json on a GPU; none on the CPU)")
    return parser


def measure(name: str, args, device: str, settings: Settings, repeats: int):
    """Run one benchmark and return its rows (or result), or why it could not run."""
    if name == "throughput":
        return throughput.run(args.data_dir, device, list(settings.images), settings.images, settings.batch_size,
                              repeats, settings.workers, args.compile, settings.val_images)
    if name == "precision":
        return precision.run(device, settings.precision_models, settings.precision_sizes, settings.precision_steps,
                             settings.precision_compiled)
    if name == "profile":
        return profile_step.run(args.data_dir, device, list(settings.images), settings.images, settings.batch_size,
                                settings.val_images)
    if name == "accuracy":
        return accuracy.run(args.data_dir, device, settings.accuracy_seeds, settings.accuracy_epochs,
                            settings.accuracy_images, settings.batch_size, settings.workers[-1], settings.val_images)
    if name == "overhead":
        try:
            return study_overhead.run(args.data_dir, settings.overhead_trials, repeats)
        except ImportError as exc:  # a GPU machine without Ray
            return f"not measured: {exc}"
    if name == "mechanism":
        return mechanism_overhead.run(args.data_dir, device, settings.mechanism_sizes, repeats)
    return gpu_sharing.run(args.data_dir, "medium", settings.batch_size, settings.sharing_counts,
                           settings.sharing_epochs, repeats, args.compile, device, settings.images.get("medium"),
                           settings.val_images)


def run_benchmarks(chosen: list[str], args, device: str, settings: Settings, repeats: int, results: str) -> dict:
    """Run `chosen`, print each section and write it into `results` (a path, or 'none'); returns the rows."""
    found = {}
    for name in chosen:
        print(f"{TITLES[name].capitalize()}:")
        started = time.time()
        found[name] = measure(name, args, device, settings, repeats)
        text = found[name] if isinstance(found[name], str) else SECTIONS[name](found[name])
        body = (f"## {'CPU' if device == 'cpu' else 'GPU'}: {TITLES[name]}\n\n{machine()}; {versions()}; "
                f"{time.strftime('%Y-%m-%d')}; median of {repeats} runs (smallest-largest in brackets) where "
                f"repeated; {time.time() - started:.0f} s.\n\n{text}")
        print("\n" + body + "\n", flush=True)
        if results != "none":
            update_results(Path(results), f"{device} {name}", body)
    if results != "none":
        print(f"Updated {results}")
    return found


def run_gpu_check(args, device: str) -> int:
    """`--gpu-check`: the CUDA paths once (`--device cpu`: its dry run), the table of checks, the rates file."""
    settings = gpu_check.check_settings(SETTINGS["cuda" if device == "cuda" else "smoke"], device)
    results = args.results or (str(RESULTS) if device == "cuda" else "none")
    rates_file = args.rates or (str(gpu_check.RATES_FILE) if device == "cuda" else "none")
    started = time.time()
    with gpu_check.data_dir_for_check(args.data_dir, device) as data_dir:
        args.data_dir = data_dir
        found = run_benchmarks(list(gpu_check.CHECKED), args, device, settings,
                               args.repeats or settings.repeats, results)
        if rates_file != "none":
            rates = gpu_check.measure_rates_for_dry_run(device, gpu_check.rate_models(settings, device),
                                                        settings.batch_size, found["sharing"])
            gpu_check.write_rates(Path(rates_file), rates)
            print(f"Wrote the rates of `study run --dry-run --gpus N` to {rates_file}")
    table = gpu_check.check_table(gpu_check.checks(found))
    body = (f"## {'CPU' if device == 'cpu' else 'GPU'}: the GPU check\n\n{machine()}; {versions()}; "
            f"{time.strftime('%Y-%m-%d')}; `python -m benchmarks --gpu-check`, {time.time() - started:.0f} s in all "
            f"(the sections above hold the tables).\n\n{table}")
    print("\n" + body)
    if results != "none":
        update_results(Path(results), f"{device} gpu-check", body)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    print(f"Benchmarks on {machine()}\n{versions()}\n")
    if args.gpu_check:
        if args.device != "cpu" and not torch.cuda.is_available():
            raise SystemExit("--gpu-check: no CUDA GPU on this machine (torch.cuda.is_available() is False); "
                             "`--gpu-check --device cpu` runs its dry run with tiny sizes")
        return run_gpu_check(args, device)
    settings = SETTINGS["smoke" if args.smoke else device]
    chosen = args.only or [b for b in BENCHMARKS if b != "sharing" or device == "cuda"]
    run_benchmarks(chosen, args, device, settings, args.repeats or settings.repeats, args.results or str(RESULTS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
