"""Run the benchmarks, print their tables and update benchmarks/RESULTS.md.

    python -m benchmarks                 # every benchmark this machine can run
    python -m benchmarks --only throughput --repeats 5
    python -m benchmarks --smoke --data-dir DIR --results none   # seconds; what the tests run

On a CPU machine: throughput (CPU), accuracy (CPU) and study overhead. With a CUDA
GPU: throughput and accuracy on the GPU, and GPU sharing; study overhead too when
Ray is installed. RESULTS.md keeps one section per device, so a CPU run does not
erase the GPU numbers.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import accuracy, gpu_sharing, study_overhead, throughput
from benchmarks.common import Measured, machine, markdown_table, versions

RESULTS = Path(__file__).with_name("RESULTS.md")
BENCHMARKS = ("throughput", "accuracy", "overhead", "sharing")


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
    val_images: int = 6000  # the fixed validation split


SETTINGS = {
    # A 2-core machine: sized so that the whole run takes about 30 minutes.
    "cpu": Settings({"small": 2048, "medium": 1024, "large": 256}, batch_size=64, repeats=3, workers=[0, 2],
                    accuracy_seeds=3, accuracy_epochs=3, accuracy_images=3000, overhead_trials=12,
                    sharing_counts=[], sharing_epochs=0),
    "cuda": Settings({"small": None, "medium": None, "large": None}, batch_size=256, repeats=5, workers=[4, 8],
                     accuracy_seeds=3, accuracy_epochs=10, accuracy_images=None, overhead_trials=12,
                     sharing_counts=[1, 2, 4, 8], sharing_epochs=3),
    # Tests: tiny synthetic data, one repeat; checks that everything runs, not speed.
    "smoke": Settings({"small": 128, "medium": 128, "large": 64}, batch_size=32, repeats=1, workers=[0],
                      accuracy_seeds=2, accuracy_epochs=1, accuracy_images=128, overhead_trials=12,
                      sharing_counts=[1, 2], sharing_epochs=1, val_images=100),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    parser.add_argument("--data-dir", help="directory with the FashionMNIST IDX files")
    parser.add_argument("--repeats", type=int, help="measurements per figure (the median is reported)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the project's model too")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it runs, measures nothing")
    parser.add_argument("--results", default=str(RESULTS), help="markdown file to update, or 'none'")
    return parser


def throughput_section(rows: list[throughput.ThroughputRow]) -> str:
    table = markdown_table(
        ["model", "factors", "images/epoch", "project img/s", "standard img/s", "standard workers", "ratio"],
        [[r.model, r.factors, f"{r.images:,}", r.project, r.baseline, r.baseline_workers, f"{r.ratio:.2f}x"]
         for r in rows],
    )
    return "### Throughput (training images per second)\n\n" + table


def accuracy_section(result: accuracy.AccuracyResult) -> str:
    def mean_std(values):
        return f"{torch.tensor(values).mean():.4f} ± {torch.tensor(values).std():.4f}"

    table = markdown_table(
        ["pipeline", "val_acc per seed", "mean ± std"],
        [["project", ", ".join(f"{v:.4f}" for v in result.project), mean_std(result.project)],
         ["standard", ", ".join(f"{v:.4f}" for v in result.baseline), mean_std(result.baseline)]],
    )
    images = f"{result.train_images:,}" if result.train_images else "all 54,000"
    return (f"### Accuracy, same configuration both ways\n\n{result.config}; {result.epochs} epochs on {images} "
            f"training images, validated on the fixed {result.val_images:,}-image split.\n\n{table}\n\n"
            f"Difference {result.difference:+.4f} (standard error {result.standard_error:.4f}): {result.verdict}.")


def overhead_section(result: study_overhead.OverheadResult) -> str:
    def seconds(m: Measured, digits: int) -> str:
        return f"{m.median:.{digits}f} ({m.low:.{digits}f}-{m.high:.{digits}f}, n={m.n})"

    larger = study_overhead.SIZE_RATIO * result.trials
    table = markdown_table(
        ["trials", "study wall s", "trials' training s", "overhead s per trial", "overhead s once per study",
         "Ray start s", "worker peak RSS MB"],
        [[result.trials, seconds(result.wall_s, 1), f"{result.training_s.median:.1f}",
          seconds(result.per_trial_s, 2), seconds(result.once_s, 1), f"{result.ray_init_s:.1f}",
          f"{result.worker_peak_rss_mb:.0f}"]],
    )
    return ("### Study overhead (embedded Ray, smoke budget, one trial at a time on every core)\n\n"
            f"Overhead is wall time minus the trials' training time; per trial and once per study from a "
            f"{result.trials}-trial and a {larger}-trial study in each repeat (the wall and training "
            f"columns are the {result.trials}-trial study's).\n\n" + table)


def sharing_section(rows: list[gpu_sharing.SharingRow]) -> str:
    table = markdown_table(
        ["trials on the GPU", "aggregate img/s", "per trial img/s", "vs 1 trial"],
        [[r.trials, r.aggregate, f"{r.per_trial:,.0f}", f"{r.speedup(rows[0]):.2f}x"] for r in rows],
    )
    return "### GPU sharing (medium model, each trial capped at 1/N of the GPU's memory)\n\n" + table


def update_results(path: Path, device_label: str, body: str) -> None:
    """Replace this device's section of the results file (or add it); other sections stay."""
    begin, end = f"<!-- begin {device_label} -->", f"<!-- end {device_label} -->"
    section = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nWritten by `python -m benchmarks`.\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    settings = SETTINGS["smoke" if args.smoke else device]
    repeats = args.repeats or settings.repeats
    chosen = args.only or [b for b in BENCHMARKS if b != "sharing" or device == "cuda"]
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    started = time.time()
    print(f"Benchmarks on {machine()}\n{versions()}\n")
    sections = []
    if "throughput" in chosen:
        print("Throughput:")
        rows = throughput.run(args.data_dir, device, list(settings.images), settings.images, settings.batch_size,
                              repeats, settings.workers, args.compile, settings.val_images)
        sections.append(throughput_section(rows))
    if "accuracy" in chosen:
        print("Accuracy:")
        result = accuracy.run(args.data_dir, device, settings.accuracy_seeds, settings.accuracy_epochs,
                              settings.accuracy_images, settings.batch_size, settings.workers[-1],
                              settings.val_images)
        sections.append(accuracy_section(result))
    if "overhead" in chosen:
        print("Study overhead:")
        try:
            sections.append(overhead_section(study_overhead.run(args.data_dir, settings.overhead_trials, repeats)))
        except ImportError as exc:  # a GPU machine without Ray
            sections.append(f"### Study overhead\n\nnot measured: {exc}")
    if "sharing" in chosen:
        print("GPU sharing:")
        rows = gpu_sharing.run(args.data_dir, "medium", settings.batch_size, settings.sharing_counts,
                               settings.sharing_epochs, repeats, args.compile)
        sections.append(sharing_section(rows))

    label = "cpu" if device == "cpu" else "cuda"
    header = (f"## {'CPU' if device == 'cpu' else 'GPU'}: {machine()}\n\n{versions()}; "
              f"{time.strftime('%Y-%m-%d')}; median of {repeats} runs (smallest-largest in brackets); "
              f"{(time.time() - started) / 60:.0f} min in all.")
    body = "\n\n".join([header, *sections])
    print("\n" + body)
    if args.results != "none":
        update_results(Path(args.results), label, body)
        print(f"\nUpdated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
