"""Run the benchmarks, print their tables and update benchmarks/RESULTS.md.

    python -m benchmarks                 # every benchmark this machine can run
    python -m benchmarks --only throughput --repeats 5
    python -m benchmarks --smoke --data-dir DIR --results none   # seconds; what the tests run

On a CPU machine: throughput, profile and accuracy (CPU), study overhead and the cost of measuring
the mechanism (variance shift, BN re-estimation). With a
CUDA GPU: throughput, profile and accuracy on the GPU, and GPU sharing; study overhead
too when Ray is installed. RESULTS.md keeps one section per device and benchmark, so a
run replaces only the sections it measured (a CPU run keeps the GPU numbers, an
`--only accuracy` run keeps the throughput table).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmarks import accuracy, gpu_sharing, mechanism_overhead, profile_step, study_overhead, throughput
from benchmarks.common import Measured, machine, markdown_table, versions

RESULTS = Path(__file__).with_name("RESULTS.md")
BENCHMARKS = ("throughput", "profile", "accuracy", "overhead", "mechanism", "sharing")


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


SETTINGS = {
    # A 2-core machine: the whole run takes 3 minutes when it is idle, up to 30 when busy.
    "cpu": Settings({"small": 2048, "medium": 1024, "large": 256}, batch_size=64, repeats=3, workers=[0, 2],
                    accuracy_seeds=3, accuracy_epochs=3, accuracy_images=3000, overhead_trials=12,
                    sharing_counts=[], sharing_epochs=0,
                    # The quick budget's sizes, and the full budget's for the medium model.
                    mechanism_sizes=[("medium", 1500, 1000, 64, 4), ("large", 1500, 1000, 64, 4),
                                     ("medium", None, 6000, 256, 30)]),
    "cuda": Settings({"small": None, "medium": None, "large": None}, batch_size=256, repeats=5, workers=[4, 8],
                     accuracy_seeds=3, accuracy_epochs=10, accuracy_images=None, overhead_trials=12,
                     sharing_counts=[1, 2, 4, 8], sharing_epochs=3,
                     mechanism_sizes=[("medium", None, 6000, 256, 30), ("large", None, 6000, 256, 30)]),
    # Tests: tiny synthetic data, one repeat; checks that everything runs, not speed.
    "smoke": Settings({"small": 128, "medium": 128, "large": 64}, batch_size=32, repeats=1, workers=[0],
                      accuracy_seeds=2, accuracy_epochs=1, accuracy_images=128, overhead_trials=12,
                      sharing_counts=[1, 2], sharing_epochs=1, mechanism_sizes=[("small", 128, 100, 32, 3)],
                      val_images=100),
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
    return markdown_table(
        ["model", "factors", "images/epoch", "project img/s", "standard img/s", "standard workers", "ratio"],
        [[r.model, r.factors, f"{r.images:,}", r.project, r.baseline, r.baseline_workers, f"{r.ratio:.2f}x"]
         for r in rows],
    )


def profile_section(rows: list[profile_step.EpochProfile]) -> str:
    def top(row: profile_step.EpochProfile) -> str:
        return ", ".join(f"{name.removeprefix('aten::')} {seconds / row.wall_s:.0%}" for name, seconds in row.top_ops)

    gpu = rows and rows[0].gpu_busy_s is not None
    header = ["model", "factors", "batches", "host reads per epoch", "epoch s", "in operators"]
    header += ["GPU busy"] if gpu else []
    table = markdown_table(
        header + ["largest operators (self time, share of the epoch)"],
        [[r.model, r.factors, r.batches, r.host_reads, f"{r.wall_s:.3f}", f"{r.in_ops_share:.0%}"]
         + ([f"{r.gpu_busy_share:.0%}"] if gpu else []) + [top(r)] for r in rows],
    )
    return ("One training epoch under `torch.profiler`, after a warm-up epoch. Host reads are the reads of a "
            "tensor value into Python (`aten::_local_scalar_dense`: `.item()` and the like), each a wait for "
            "the device on a GPU; *in operators* is the share of the epoch's wall time inside PyTorch operators "
            "(the rest is Python between them).\n\n" + table)


def accuracy_section(result: accuracy.AccuracyResult) -> str:
    def mean_std(values):
        return f"{torch.tensor(values).mean():.4f} ± {torch.tensor(values).std():.4f}"

    table = markdown_table(
        ["pipeline", "val_acc per seed", "mean ± std"],
        [["project", ", ".join(f"{v:.4f}" for v in result.project), mean_std(result.project)],
         ["standard", ", ".join(f"{v:.4f}" for v in result.baseline), mean_std(result.baseline)]],
    )
    images = f"{result.train_images:,}" if result.train_images else "all 54,000"
    return (f"{result.config}; {result.epochs} epochs on {images} training images, validated on the fixed "
            f"{result.val_images:,}-image split.\n\n{table}\n\n"
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
    display, tune_output = result.display_overhead_s, result.tune_output_overhead_s
    console = markdown_table(
        ["console", f"overhead s of a {result.trials}-trial study", "ratio"],
        [["one-line display (the default)", seconds(display, 1), f"{display.median / tune_output.median:.2f}x"],
         ["Ray Tune's own output (--verbose)", seconds(tune_output, 1), "1.00x"]],
    )
    return ("Embedded Ray, smoke budget, one trial at a time on every core. Overhead is wall time minus the "
            f"trials' training time; per trial and once per study from a {result.trials}-trial and a "
            f"{larger}-trial study in each repeat (the wall and training columns are the "
            f"{result.trials}-trial study's).\n\n" + table +
            f"\n\nThe console's cost: a third {result.trials}-trial study per repeat shows Ray Tune's own output "
            "instead of the display, the two in alternating order.\n\n" + console)


def mechanism_section(rows: list[mechanism_overhead.OverheadRow]) -> str:
    return ("Dropout2d before BN in every conv block. The variance shift is measured in the train-eval pass "
            "of every validated epoch (hooks on the BN layers' inputs); its cost is that pass with the hooks "
            "minus without, as a share of the whole epoch (target: under 5%). BN re-estimation runs once, "
            "after the last epoch: its share is of a whole run.\n\n" + markdown_table(
                ["model", "training images", "validation images", "train-eval images", "epoch s",
                 "variance shift ms", "share of the epoch", "re-estimation ms", "share of a run (epochs)"],
                [[r.model, f"{r.train_images:,}", f"{r.val_images:,}", f"{r.train_eval_images:,}",
                  f"{r.epoch_s.median:.3f}", f"{1000 * r.shift_s.median:.1f}", f"{r.shift_share:.1%}",
                  f"{1000 * r.reestimate_s.median:.0f}", f"{r.reestimate_share:.1%} ({r.max_epochs})"] for r in rows]))


def sharing_section(rows: list[gpu_sharing.SharingRow]) -> str:
    return "Medium model, each trial capped at 1/N of the GPU's memory.\n\n" + markdown_table(
        ["trials on the GPU", "aggregate img/s", "per trial img/s", "vs 1 trial"],
        [[r.trials, r.aggregate, f"{r.per_trial:,.0f}", f"{r.speedup(rows[0]):.2f}x"] for r in rows],
    )


TITLES = {"throughput": "throughput (training images per second)", "profile": "where an epoch's time goes",
          "accuracy": "accuracy, same configuration both ways", "overhead": "study overhead",
          "mechanism": "cost of measuring the mechanism", "sharing": "GPU sharing"}


def update_results(path: Path, key: str, body: str) -> None:
    """Replace the section `key` (a device and a benchmark) of the results file, or add it; others stay."""
    begin, end = f"<!-- begin {key} -->", f"<!-- end {key} -->"
    section = f"{begin}\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmark results\n\nWritten by `python -m benchmarks`.\n"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    path.write_text(text)


def measure(name: str, args, device: str, settings: Settings, repeats: int) -> str:
    """Run one benchmark and return its table with the text that explains it."""
    if name == "throughput":
        return throughput_section(throughput.run(
            args.data_dir, device, list(settings.images), settings.images, settings.batch_size, repeats,
            settings.workers, args.compile, settings.val_images))
    if name == "profile":
        return profile_section(profile_step.run(
            args.data_dir, device, list(settings.images), settings.images, settings.batch_size, settings.val_images))
    if name == "accuracy":
        return accuracy_section(accuracy.run(
            args.data_dir, device, settings.accuracy_seeds, settings.accuracy_epochs, settings.accuracy_images,
            settings.batch_size, settings.workers[-1], settings.val_images))
    if name == "overhead":
        try:
            return overhead_section(study_overhead.run(args.data_dir, settings.overhead_trials, repeats))
        except ImportError as exc:  # a GPU machine without Ray
            return f"not measured: {exc}"
    if name == "mechanism":
        return mechanism_section(mechanism_overhead.run(args.data_dir, device, settings.mechanism_sizes, repeats))
    return sharing_section(gpu_sharing.run(
        args.data_dir, "medium", settings.batch_size, settings.sharing_counts, settings.sharing_epochs, repeats,
        args.compile))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    settings = SETTINGS["smoke" if args.smoke else device]
    repeats = args.repeats or settings.repeats
    chosen = args.only or [b for b in BENCHMARKS if b != "sharing" or device == "cuda"]
    if device == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    label = "cpu" if device == "cpu" else "cuda"
    print(f"Benchmarks on {machine()}\n{versions()}\n")
    for name in chosen:
        print(f"{TITLES[name].capitalize()}:")
        started = time.time()
        text = measure(name, args, device, settings, repeats)
        body = (f"## {'CPU' if device == 'cpu' else 'GPU'}: {TITLES[name]}\n\n{machine()}; {versions()}; "
                f"{time.strftime('%Y-%m-%d')}; median of {repeats} runs (smallest-largest in brackets) where "
                f"repeated; {time.time() - started:.0f} s.\n\n{text}")
        print("\n" + body + "\n", flush=True)
        if args.results != "none":
            update_results(Path(args.results), f"{label} {name}", body)
    if args.results != "none":
        print(f"Updated {args.results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
