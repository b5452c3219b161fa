"""The experiment directory's files and the columns the tool writes into them (docs/experiment-directory.md).

One place for the file names and column groups that the writers (`study.runtime.results`,
`study.retraining`) and the readers (`analysis.io`, `study.retraining.common`) share.
Pure Python: no Ray, no PyTorch.
"""

from __future__ import annotations

from study.vocabulary.factors import NUISANCE, SCIENTIFIC_FACTORS

# Files of an experiment directory.
TRIALS = "trials.csv"  # one row per search trial
EPOCHS = "epochs.csv"  # one row per search trial and epoch
STUDY = "study.json"  # what `study run` ran
CV = "cv.csv"  # stage 2: one row per configuration and replicate
CV_SUMMARY = "cv_summary.csv"  # stage 2: one row per configuration
CV_TESTS = "cv_tests.csv"  # stage 2: the best configuration against each other one
CV_RECORD = "cv.json"
FINAL = "final.csv"  # one row per final-evaluation seed
FINAL_RECORD = "final.json"
JOURNALS_DIR = "optuna"  # the search's folder: one Optuna journal per cell (<cell>.log) and the ASHA rungs

# Training settings a space may fix for one cell only (besides the nuisance values): study.json's param_space
# holds the space-wide fixed values, so these go into every table row that retraining reads.
CELL_SETTINGS = ("label_smoothing", "random_erasing", "width_multiplier")
# Settings every search trial shares with its cell's others (from the budget and the space).
FIXED_COLUMNS = ("batch_size", "max_epochs", "train_size", "val_size", "seed", "precision", *CELL_SETTINGS)
# A trial's own settings in trials.csv: what retraining it needs beyond study.json.
TRIAL_SETTINGS = (*SCIENTIFIC_FACTORS, *NUISANCE, *FIXED_COLUMNS)
# Settings cv.csv and final.csv record beside the factors and nuisance values.
RECORDED_SETTINGS = ("batch_size", "max_epochs", "train_size", "seed", *CELL_SETTINGS)

# What a trained network's mechanism looks like (docs/mechanism.md): the variance
# shift of its BN layers, and its validation accuracy once their statistics are re-estimated.
MECHANISM_METRICS = ("var_shift_max", "var_shift_mean", "val_acc_bn_reestimated")
# Final-epoch metrics of a search trial in trials.csv.
TRIAL_METRICS = (
    "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "val_loss", "val_acc", "gap", "ece", "conf_wrong",
    *MECHANISM_METRICS, "epoch_s", "samples_per_s",
)
# Metrics of a stage-2 replicate in cv.csv (after its last epoch).
REPLICATE_METRICS = (
    "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "val_loss", "val_acc", "gap", "ece", "conf_wrong",
    *MECHANISM_METRICS, "epoch_s",
)
# Metrics of a final-evaluation seed in final.csv.
FINAL_METRICS = (
    "train_loss", "train_acc", "train_eval_loss", "train_eval_acc", "test_loss", "test_acc", "test_ece", "test_conf_wrong",
    "test_loss_flip", "test_acc_flip", "var_shift_max", "var_shift_mean", "test_acc_bn_reestimated", "test_ece_bn_reestimated",
)


def is_uri(location: str) -> bool:
    """An experiment or storage location on a remote filesystem (s3://...) rather than a local path."""
    return "://" in str(location)


def jsonable(obj):
    """`obj` as plain JSON types, as every record file of the tool is written and compared.

    NaN and infinities become None (JSON has neither), numpy scalars and arrays plain
    Python, tuples lists, and anything else its `str`.
    """
    import math

    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars
        return jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if str(obj) in ("<NA>", "NaT"):  # pandas' missing values
        return None
    return str(obj)
