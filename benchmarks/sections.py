"""The benchmarks' results as markdown: one section per device and benchmark in RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from benchmarks import accuracy, gpu_sharing, limits, mechanism_overhead, precision, profile_step, study_overhead, throughput
from benchmarks.common import Measured, markdown_table


def throughput_section(rows: list[throughput.ThroughputRow]) -> str:
    measured = sorted({(limits.precision_of(r.numerics), r.limit_gflops) for r in rows})
    table = markdown_table(
        ["model", "factors", "images/epoch", "project img/s", "standard img/s", "standard workers", "ratio",
         "project numerics", "MFLOP per image", "project GFLOP/s", "share of the matmul rate"],
        [[r.model, r.factors, f"{r.images:,}", r.project, r.baseline, r.baseline_workers, f"{r.ratio:.2f}x",
          r.numerics, f"{r.flops_per_image / 1e6:.1f}", f"{r.project_gflops:.1f}", f"{r.share_of_limit:.0%}"]
         for r in rows],
    )
    rates = ", ".join(f"{precision} {gflops:,.0f} GFLOP/s" for precision, gflops in measured)
    return (f"The matmul rate (a {limits.MATMUL_SIZE}x{limits.MATMUL_SIZE} product, the same threads, measured "
            f"in this run): {rates}. A training image's FLOPs count its convolutions and matrix products, "
            "forward and backward (`torch.utils.flop_counter`).\n\n" + table)


def precision_section(rows: list[precision.PrecisionRow]) -> str:
    compiled = any(r.compiled for r in rows)
    header = ["model", "BN", "threads, batch", *precision.LAYOUTS, "auto picks", "its share of the matmul rate"]
    header += ["auto compiled", "compiled / eager"] if compiled else []
    table = markdown_table(header, [
        [r.model, r.bn, f"{r.threads}, {r.batch_size}", *(f"{r.rates[label]:,.0f}" for label in precision.LAYOUTS),
         r.auto, f"{r.share(r.auto):.0%}"]
        + ([f"{r.compiled:,.0f}", f"{r.compiled / r.rates[r.auto]:.2f}x"] if compiled else []) for r in rows])
    limits_by_threads = {r.threads: r.limits for r in rows}
    rates = "; ".join(f"{threads} thread{'s' if threads > 1 else ''}: " + ", ".join(
        f"{name} {gflops:,.1f}" for name, gflops in limits.items()) for threads, limits in limits_by_threads.items())
    return ("Training images per second of one step (synthetic batch, SGD, Dropout everywhere), in each precision "
            "and layout; *auto picks* is the fastest of `--precision auto`'s candidates on this device (bf16 only "
            "with native bf16 instructions on a CPU). The matmul rate, GFLOP/s (" + rates + ").\n\n" + table)


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

    runs = [("project (fp32)", result.project), ("standard (fp32)", result.baseline), ("project, bf16", result.bf16)]
    table = markdown_table(
        ["pipeline", "val_acc per seed", "mean ± std"],
        [[name, ", ".join(f"{v:.4f}" for v in values), mean_std(values)] for name, values in runs if values],
    )
    images = f"{result.train_images:,}" if result.train_images else "all 54,000"
    text = (f"{result.config}; {result.epochs} epochs on {images} training images, validated on the fixed "
            f"{result.val_images:,}-image split.\n\n{table}\n\n"
            f"Project against standard: difference {result.difference:+.4f} (standard error "
            f"{result.standard_error:.4f}): {result.verdict}.")
    if len(result.bf16) > 1:
        text += (f"\n\nbf16 against fp32, the same seeds (initial weights, batches and masks): mean paired difference "
                 f"{result.bf16_difference:+.4f} (standard error {result.bf16_standard_error:.4f}): "
                 f"{result.bf16_verdict}.")
    return text


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
    def megabytes(value: float | None) -> str:
        return "none" if value is None else f"{value:,.0f}"

    return ("Medium model, each of N trials in its own process, capped at 1/N of the GPU's memory "
            "(`torch.cuda.set_per_process_memory_fraction`, as a trial with `--gpus-per-trial 1/N`); peak memory is "
            "the largest trial's CUDA memory allocated.\n\n" + markdown_table(
                ["trials on the GPU", "aggregate img/s", "per trial img/s", "vs 1 trial", "cap MB per trial",
                 "peak MB per trial"],
                [[r.trials, r.aggregate, f"{r.per_trial:,.0f}", f"{r.speedup(rows[0]):.2f}x", megabytes(r.cap_mb),
                  megabytes(r.peak_mb)] for r in rows]))


TITLES = {"throughput": "throughput (training images per second)",
          "precision": "precision and layout of a training step", "profile": "where an epoch's time goes",
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


SECTIONS = {"throughput": throughput_section, "precision": precision_section, "profile": profile_section,
            "accuracy": accuracy_section, "overhead": overhead_section, "mechanism": mechanism_section,
            "sharing": sharing_section}
