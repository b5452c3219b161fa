"""CellSearcher, driven directly as Tune would drive it (no Ray cluster needed).

Equal budgets per cell, one seeded Optuna study per cell, honest Optuna states read
back from the journal files, pickling / save / restore for resume, and the three
samplers (qmc, tpe, random).
"""

from __future__ import annotations

import collections
import math
import pickle
import warnings

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from scipy.stats import qmc

from search_spaces import load_space
from study.tuning.cell_search import CellSearcher
from study.tuning.cells import CellQMCSampler, journal_path, load_cell_study
from study.vocabulary.config import TrialConfig
from study.tuning.planning import SAMPLERS, tpe_startup_trials

MAX_EPOCHS = 4


def _searcher(space="bn_dropout", n=2, journal_dir=None, n_cells=None, **kwargs) -> CellSearcher:
    # Tests that write journals use a few cells: every journal write is fsync'ed.
    cells = load_space(space).named_cells()[:n_cells]
    return CellSearcher(
        cells, samples_per_cell=n, max_epochs=MAX_EPOCHS, journal_dir=journal_dir, metric="val_acc", mode="max", **kwargs
    )


def _run(searcher: CellSearcher, trial_id: str, accs: list[float], stopped_early: bool = False) -> None:
    """Feed a trial's epochs as Tune does: the result that makes the scheduler stop the
    trial (ASHA's cut, or max_t) is not passed to on_trial_result, only to on_trial_complete."""
    results = [{"epoch": e, "val_acc": a, "trial_id": trial_id} for e, a in enumerate(accs, start=1)]
    for result in results[:-1]:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, result={**results[-1], "done": True})


def _read_journal(journal_dir, cell: str) -> optuna.Study:
    """Read a cell's study straight from its journal file, with Optuna's public API."""
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal_path(journal_dir, cell))))
    return optuna.load_study(study_name=cell, storage=storage)


# ---- equal budget, routing, suggestions


def test_every_cell_gets_exactly_the_same_budget_then_finished():
    searcher = _searcher("bn_dropout", n=3)
    n_cells = len(searcher.cells)
    suggestions = [searcher.suggest(f"t{i}") for i in range(3 * n_cells)]
    per_cell = collections.Counter(s["cell"] for s in suggestions)
    assert set(per_cell.values()) == {3} and len(per_cell) == n_cells == 12
    # Round robin: the first pass visits every cell once, so all cells run concurrently.
    assert len({s["cell"] for s in suggestions[:n_cells]}) == n_cells
    assert searcher.suggest("one-too-many") == CellSearcher.FINISHED
    assert searcher.total_samples == 36
    assert all(b["suggested"] == 3 for b in searcher.budget().values())


def test_round_robin_skips_cells_whose_budget_is_used_while_trials_finish():
    searcher = _searcher("bn_dropout", n=2)
    seen = collections.Counter()
    for i in range(24):
        s = searcher.suggest(f"t{i}")
        seen[s["cell"]] += 1
        if i % 3 == 0:
            _run(searcher, f"t{i}", [0.5, 0.6])
    assert set(seen.values()) == {2}
    assert searcher.suggest("t24") == CellSearcher.FINISHED


def test_suggestion_is_cell_values_plus_sampled_nuisance_plus_metadata():
    space = load_space("bn_dropout")
    searcher = _searcher("bn_dropout")
    s = searcher.suggest("t0")
    cell = space.named_cells()[0]
    assert s == {**cell.settings, "lr": s["lr"], "weight_decay": s["weight_decay"], "cell": cell.name}
    assert 0.005 <= s["lr"] <= 0.3 and 1e-6 <= s["weight_decay"] <= 1e-2
    TrialConfig.from_flat({**space.fixed, "max_epochs": MAX_EPOCHS, **s})  # `cell` is passed over


def test_blog_ablation_suggestions_carry_experiment_and_per_cell_settings():
    searcher = _searcher("blog_ablation", n=1)
    suggestions = [searcher.suggest(f"t{i}") for i in range(8)]
    assert [s["experiment"] for s in suggestions] == list(range(1, 9))
    assert [s["cell"] for s in suggestions] == [f"exp{i}" for i in range(1, 9)]
    assert suggestions[1]["schedule"] == "none" and suggestions[3]["schedule"] != "none"
    assert all(set(s) - {"lr"} >= {"model", "bn", "dropout", "augment"} for s in suggestions)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_post_mode_trials_are_seed_replicates(sampler):
    searcher = _searcher("blog_ablation_post", n=3, seed=10, sampler=sampler)
    suggestions = [searcher.suggest(f"t{i}") for i in range(24)]
    exp1 = [s for s in suggestions if s["experiment"] == 1]
    assert [s["seed"] for s in exp1] == [10, 11, 12]
    assert "lr" not in exp1[0]  # nothing sampled: lr comes from the space's fixed values


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_each_cell_samples_only_its_own_ranges(sampler):
    searcher = _searcher("dropout_rate", n=1, sampler=sampler)
    by_cell = {s["cell"]: s for s in (searcher.suggest(f"t{i}") for i in range(12))}
    assert {"p_conv", "p_fc"} & set(by_cell["bn=none,dropout=none"]) == set()
    assert "p_fc" in by_cell["bn=pre_act,dropout=fc"] and "p_conv" not in by_cell["bn=pre_act,dropout=fc"]
    assert 0.0 <= by_cell["bn=post_act,dropout=all"]["p_conv"] <= 0.5


def test_seeded_per_cell_studies_are_reproducible_and_independent():
    a = [_searcher("bn_dropout", seed=3).suggest(f"t{i}") for i in range(1)]
    b = [_searcher("bn_dropout", seed=3).suggest(f"t{i}") for i in range(1)]
    c = [_searcher("bn_dropout", seed=4).suggest(f"t{i}") for i in range(1)]
    assert a == b and a != c
    # Cell i's sampler has seed + i: the first trials of two cells differ.
    s = _searcher("bn_dropout", seed=3)
    first, second = s.suggest("x"), s.suggest("y")
    assert first["lr"] != second["lr"]


# ---- the samplers: qmc (scrambled Sobol), tpe, random


def _unit(searcher: CellSearcher, suggestion: dict) -> tuple[float, ...]:
    """A suggestion's sampled values mapped to [0, 1) (log ranges on the log scale), in the cell's range order."""
    cell = next(c for c in searcher.cells if c.name == suggestion["cell"])
    out = []
    for name, rng in cell.ranges.items():
        low, high, x = rng.low, rng.high, suggestion[name]
        if rng.log:
            low, high, x = math.log(low), math.log(high), math.log(x)
        out.append((x - low) / (high - low))
    return tuple(out)


def _run_one_at_a_time(searcher: CellSearcher, ids, base: float = 0.5) -> list[dict]:
    """Ask each trial and finish it (to max_epochs) before the next is asked."""
    out = []
    for k, trial_id in enumerate(ids):
        out.append(searcher.suggest(trial_id))
        _run(searcher, trial_id, [base + 0.01 * k] * MAX_EPOCHS)
    return out


def test_the_default_sampler_follows_the_budget():
    assert _searcher(n=3).sampler == "qmc"  # the quick preset
    assert _searcher(n=15).sampler == "qmc"
    assert _searcher(n=16).sampler == "tpe"
    assert _searcher(n=24).sampler == "tpe"  # the full preset


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_gives_every_cell_exactly_its_budget(sampler):
    searcher = _searcher("bn_dropout", n=3, sampler=sampler)
    assert searcher.sampler == sampler
    suggestions = [searcher.suggest(f"t{i}") for i in range(36)]
    assert set(collections.Counter(s["cell"] for s in suggestions).values()) == {3}
    assert searcher.suggest("one-too-many") == CellSearcher.FINISHED
    assert all(b["suggested"] == 3 for b in searcher.budget().values())
    assert all(0.005 <= s["lr"] <= 0.3 and 1e-6 <= s["weight_decay"] <= 1e-2 for s in suggestions)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_is_seeded_reproducible_and_differs_between_cells(sampler):
    def first_pass(seed):
        searcher = _searcher("bn_dropout", n=2, seed=seed, sampler=sampler)
        return [searcher.suggest(f"t{i}") for i in range(24)]  # two trials in each of the 12 cells

    a, b, c = first_pass(3), first_pass(3), first_pass(4)
    assert a == b and a != c
    assert len({(s["lr"], s["weight_decay"]) for s in a}) == 24  # no two cells (or trials) share a point


def test_each_sampler_kind_is_built_with_the_cells_seed():
    samplers = {kind: _searcher("bn_dropout", n=3, seed=7, sampler=kind)._samplers for kind in SAMPLERS}
    cells = list(samplers["qmc"])
    assert all(type(s) is CellQMCSampler for s in samplers["qmc"].values())
    assert [s._seed for s in samplers["qmc"].values()] == [7 + i for i in range(len(cells))]
    assert all(s._scramble and s._qmc_type == "sobol" for s in samplers["qmc"].values())
    assert all(type(s) is optuna.samplers.TPESampler for s in samplers["tpe"].values())
    assert all(type(s) is optuna.samplers.RandomSampler for s in samplers["random"].values())


def test_qmc_is_built_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Optuna's ExperimentalWarning, or scipy's Sobol balance warning
        searcher = _searcher("bn_dropout", n=8, sampler="qmc")
        for i in range(96):
            searcher.suggest(f"t{i}")


@pytest.mark.parametrize("seed", range(5))
def test_qmc_draws_in_a_cell_are_distinct_and_space_filling(seed):
    # 4 points of a 2-d scrambled Sobol sequence: one in each half-by-half quadrant, and
    # one in each quarter of each range (log scale). Uniform random draws put all 4 in
    # one half of a range with probability 1/4, which across 12 cells is near certain.
    searcher = _searcher("bn_dropout", n=4, seed=seed, sampler="qmc")
    by_cell = collections.defaultdict(list)
    for i in range(48):
        s = searcher.suggest(f"t{i}")
        by_cell[s["cell"]].append(_unit(searcher, s))
    assert len(by_cell) == 12
    for points in by_cell.values():
        assert len(set(points)) == 4
        quadrants = {(x >= 0.5, y >= 0.5) for x, y in points}
        assert len(quadrants) == 4
        for dim in range(2):
            assert sorted(int(4 * p[dim]) for p in points) == [0, 1, 2, 3]


def test_qmc_trial_k_of_a_cell_is_sobol_point_k_from_the_first_trial_on():
    # The stock QMCSampler draws a study's first trial at random (it learns the space
    # from the trials); CellQMCSampler knows the cell's space, so trial 0 is point 0.
    searcher = _searcher("bn_dropout", n=4, n_cells=1, seed=11, sampler="qmc")
    points = np.array([_unit(searcher, searcher.suggest(f"t{i}")) for i in range(4)])
    expected = qmc.Sobol(2, scramble=True, seed=11).random(4)
    np.testing.assert_allclose(points, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("samples_per_cell, startup", [(1, 1), (2, 1), (3, 1), (6, 2), (24, 8), (30, 10), (60, 10)])
def test_tpe_startup_trials_follow_the_budget(samples_per_cell, startup):
    assert tpe_startup_trials(samples_per_cell) == startup
    searcher = _searcher("bn_dropout", n=samples_per_cell, n_cells=2, sampler="tpe")
    assert [s._n_startup_trials for s in searcher._samplers.values()] == [startup, startup]


def test_tpe_models_after_its_startup_trials():
    # 6 trials per cell: 2 random start-up trials (TPE draws them with a RandomSampler of
    # the same seed, so they equal the random sampler's), then TPE's own suggestions.
    tpe = _run_one_at_a_time(_searcher(n=6, n_cells=1, seed=2, sampler="tpe"), [f"t{i}" for i in range(3)])
    rnd = _run_one_at_a_time(_searcher(n=6, n_cells=1, seed=2, sampler="random"), [f"t{i}" for i in range(3)])
    assert tpe[:2] == rnd[:2] and tpe[2] != rnd[2]


def test_a_bad_sampler_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"unknown sampler 'sobol'; choose one of qmc, tpe, random"):
        _searcher(sampler="sobol")
    with pytest.raises(ValueError, match=r"'TPE'"):
        _searcher(sampler="TPE")


# ---- honest Optuna states, read back from the journal


def test_pruned_completed_and_errored_trials_in_the_journal(tmp_path):
    searcher = _searcher("bn_dropout", n=3, journal_dir=tmp_path, n_cells=2)
    cell = searcher.cells[0].name
    n_cells = len(searcher.cells)
    ids = {}
    for i in range(3 * n_cells):
        s = searcher.suggest(f"t{i}")
        if s["cell"] == cell:
            ids[len(ids)] = f"t{i}"
    _run(searcher, ids[0], [0.50, 0.61])  # ASHA stopped it after epoch 2 of 4
    _run(searcher, ids[1], [0.55, 0.66, 0.71, 0.70])  # trained to max_epochs
    searcher.on_trial_result(ids[2], {"epoch": 1, "val_acc": 0.4})
    searcher.on_trial_complete(ids[2], error=True)  # e.g. a diverged loss

    study = _read_journal(tmp_path, cell)
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    pruned, complete, failed = trials[ids[0]], trials[ids[1]], trials[ids[2]]
    assert pruned.state == TrialState.PRUNED
    assert pruned.intermediate_values == {1: 0.50, 2: 0.61}  # step = epoch
    assert complete.state == TrialState.COMPLETE and complete.value == 0.70  # the final epoch, not the best
    assert complete.intermediate_values == {1: 0.55, 2: 0.66, 3: 0.71, 4: 0.70}
    assert failed.state == TrialState.FAIL and failed.intermediate_values == {1: 0.4}
    assert searcher.budget()[cell] == {"suggested": 3, "running": 0, "pruned": 1, "complete": 1, "fail": 1}
    # The cell's study holds only its own trials and its own distributions.
    assert len(study.trials) == 3 and all(set(t.params) == {"lr", "weight_decay"} for t in study.trials)
    assert len(list(tmp_path.glob("*.log"))) == n_cells


def test_completed_value_best(tmp_path):
    searcher = _searcher("bn_dropout", n=1, journal_dir=tmp_path, n_cells=1, completed_value="best")
    s = searcher.suggest("t0")
    _run(searcher, "t0", [0.55, 0.72, 0.71, 0.70])
    assert _read_journal(tmp_path, s["cell"]).trials[0].value == 0.72


def test_duplicate_and_unknown_notifications_are_ignored(tmp_path):
    searcher = _searcher("bn_dropout", n=1, journal_dir=tmp_path, n_cells=1)
    s = searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6, 0.7, 0.8])
    searcher.on_trial_complete("t0", {"epoch": 4, "val_acc": 0.1})  # told twice: no change
    searcher.on_trial_result("unknown", {"epoch": 1, "val_acc": 0.5})
    searcher.on_trial_complete("unknown", {"epoch": 1, "val_acc": 0.5})
    (trial,) = _read_journal(tmp_path, s["cell"]).trials
    assert trial.state == TrialState.COMPLETE and trial.value == 0.8


def test_nan_metric_is_failed_not_completed(tmp_path):
    searcher = _searcher("bn_dropout", n=1, journal_dir=tmp_path, n_cells=1)
    s = searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6, 0.7, float("nan")])
    assert _read_journal(tmp_path, s["cell"]).trials[0].state != TrialState.COMPLETE


# ---- pickling, save / restore, resume


def test_pickling_drops_study_handles_and_keeps_routing(tmp_path):
    searcher = _searcher("bn_dropout", n=2, journal_dir=tmp_path, n_cells=2)
    searcher.suggest("t0")
    searcher.on_trial_result("t0", {"epoch": 1, "val_acc": 0.5})
    assert searcher._studies  # opened
    copy = pickle.loads(pickle.dumps(searcher))
    assert copy._studies == {} and copy._live == searcher._live and copy._counts == searcher._counts
    copy.on_trial_result("t0", {"epoch": 2, "val_acc": 0.6})  # reopens the journal lazily
    cell = copy.trial_cell("t0")
    assert load_cell_study(tmp_path, cell).trials[0].intermediate_values == {1: 0.5, 2: 0.6}


def test_save_restore_continues_live_trials_and_reaches_the_budget(tmp_path):
    journal = tmp_path / "optuna"
    pristine = pickle.dumps(_searcher("bn_dropout", n=3, journal_dir=journal, n_cells=3, seed=1))  # as in tuner.pkl
    first = pickle.loads(pristine)
    for i in range(6):
        first.suggest(f"t{i}")
    for i in range(5):
        _run(first, f"t{i}", [0.5, 0.6, 0.7, 0.8])
    first.on_trial_result("t5", {"epoch": 1, "val_acc": 0.55})  # live at the checkpoint
    first.save(str(tmp_path / "searcher-state-1.json"))
    # After the checkpoint: one more epoch of t5, and trials Tune will forget (never checkpointed):
    # one still running at the interruption, one that already finished (ASHA stopped it).
    first.on_trial_result("t5", {"epoch": 2, "val_acc": 0.65})
    first.suggest("t-running")
    first.suggest("t-finished")
    _run(first, "t-finished", [0.1])

    resumed = pickle.loads(pristine)
    resumed.restore(str(tmp_path / "searcher-state-1.json"))
    t5_cell = resumed.trial_cell("t5")
    # Tune resumes t5 from its last checkpoint and re-runs epoch 2, then finishes it.
    _run(resumed, "t5", [0.55, 0.66, 0.75, 0.81])
    new = [resumed.suggest(f"r{i}") for i in range(9 - 6)]
    assert CellSearcher.FINISHED not in new
    assert resumed.suggest("r-extra") == CellSearcher.FINISHED
    assert all(b["suggested"] == 3 for b in resumed.budget().values())

    studies = {c.name: load_cell_study(journal, c.name) for c in resumed.cells}
    t5 = next(t for t in studies[t5_cell].trials if t.user_attrs["tune_trial_id"] == "t5")
    assert t5.state == TrialState.COMPLETE and t5.value == 0.81
    assert t5.intermediate_values == {1: 0.55, 2: 0.66, 3: 0.75, 4: 0.81}  # the re-run epoch keeps the newest value
    # The studies hold exactly the trials Tune knows, once each: the forgotten ones are gone
    # (a cell's study would otherwise count more finished trials than the cell ran).
    owners = collections.Counter(t.user_attrs["tune_trial_id"] for st in studies.values() for t in st.trials)
    assert owners == collections.Counter([f"t{i}" for i in range(6)] + [f"r{i}" for i in range(3)])
    completed = [t for st in studies.values() for t in st.trials if t.state == TrialState.COMPLETE]
    assert len(completed) == 6  # t0..t5: none lost, none run twice


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_save_restore_continues_every_samplers_sequence(tmp_path, sampler):
    """An interrupted and restored run suggests exactly what an uninterrupted one does: no point twice."""
    def make(journal):
        return _searcher("bn_dropout", n=4, journal_dir=journal, n_cells=2, seed=5, sampler=sampler)

    ids = [f"t{i}" for i in range(8)]
    expected = _run_one_at_a_time(make(tmp_path / "uninterrupted"), ids)

    journal = tmp_path / "optuna"
    pristine = pickle.dumps(make(journal))  # as in tuner.pkl
    first = pickle.loads(pristine)
    got = _run_one_at_a_time(first, ids[:4])  # two trials in each cell
    first.save(str(tmp_path / "searcher-state.json"))
    first.suggest("t-forgotten")  # asked after the checkpoint: Tune forgets it and asks again
    resumed = pickle.loads(pristine)
    resumed.restore(str(tmp_path / "searcher-state.json"))
    assert resumed.sampler == sampler
    got += [resumed.suggest(ids[4])]
    _run(resumed, ids[4], [0.54] * MAX_EPOCHS)
    pickle.loads(pickle.dumps(resumed))  # Tune pickles the searcher again at later checkpoints
    got += _run_one_at_a_time(resumed, ids[5:], base=0.55)
    assert got == expected
    assert resumed.suggest("one-too-many") == CellSearcher.FINISHED
    for cell in resumed.cells:
        points = [(t.params["lr"], t.params["weight_decay"]) for t in load_cell_study(journal, cell.name).trials]
        assert len(points) == len(set(points)) == 4


def test_qmc_after_a_run_killed_before_its_first_checkpoint_continues_the_sequence(tmp_path):
    killed = _searcher("bn_dropout", n=4, journal_dir=tmp_path, n_cells=1, sampler="qmc")
    points = [_unit(killed, killed.suggest("t0"))]
    _run(killed, "t0", [0.5, 0.6])
    points.append(_unit(killed, killed.suggest("t1")))  # running when the run was killed
    fresh = _searcher("bn_dropout", n=4, journal_dir=tmp_path, n_cells=1, sampler="qmc")
    points += [_unit(fresh, fresh.suggest(f"u{i}")) for i in range(2)]
    # The journal's points count on: the new trials are Sobol points 2 and 3, not 0 and 1 again.
    assert len(set(points)) == 4
    assert len({(x >= 0.5, y >= 0.5) for x, y in points}) == 4


def test_a_journal_left_by_a_run_without_checkpoint_fails_its_running_trials(tmp_path):
    killed = _searcher("bn_dropout", n=2, journal_dir=tmp_path, n_cells=1)
    killed.suggest("t0")
    _run(killed, "t0", [0.5, 0.6])
    killed.suggest("t1")  # running when the run was killed, before any checkpoint
    fresh = _searcher("bn_dropout", n=2, journal_dir=tmp_path, n_cells=1)
    fresh.suggest("u0")
    cell = fresh.trial_cell("u0")
    states = {t.user_attrs["tune_trial_id"]: (t.state, t.user_attrs.get("orphaned")) for t in
              load_cell_study(tmp_path, cell).trials}
    assert states == {"t0": (TrialState.PRUNED, None), "t1": (TrialState.FAIL, True), "u0": (TrialState.RUNNING, None)}


def test_restore_rewrites_a_missing_journal_from_the_checkpoint(tmp_path):
    journal = tmp_path / "optuna"
    searcher = _searcher("bn_dropout", n=1, journal_dir=journal, n_cells=1)
    s = searcher.suggest("t0")
    _run(searcher, "t0", [0.5, 0.6])
    searcher.save(str(tmp_path / "state.json"))
    for f in journal.iterdir():
        f.unlink()  # e.g. resumed on a new head node from remote storage
    resumed = _searcher("bn_dropout", n=1, journal_dir=journal, n_cells=1)
    resumed.restore(str(tmp_path / "state.json"))
    assert load_cell_study(journal, s["cell"]).trials[0].state == TrialState.PRUNED
    assert resumed.budget()[s["cell"]]["pruned"] == 1


# ---- what Tune passes in set_search_properties


def test_num_samples_below_the_budget_is_refused():
    searcher = _searcher("bn_dropout", n=2)
    with pytest.raises(ValueError, match="num_samples=10 .* 2 x 12 = 24.*set num_samples=24"):
        searcher.set_search_properties("val_acc", "max", {"max_epochs": MAX_EPOCHS}, num_samples=10)
    assert searcher.set_search_properties("val_acc", "max", {"max_epochs": MAX_EPOCHS}, num_samples=24)


def test_max_epochs_must_agree_with_param_space():
    with pytest.raises(ValueError, match="max_epochs=30"):
        _searcher().set_search_properties(None, None, {"max_epochs": 30})


def test_metric_and_mode_come_from_the_tuner():
    searcher = CellSearcher(load_space("bn_dropout").named_cells(), samples_per_cell=1, max_epochs=MAX_EPOCHS)
    with pytest.raises(RuntimeError, match="metric and mode"):
        searcher.suggest("t0")
    searcher.set_search_properties("val_acc", "max", {})
    assert searcher.suggest("t0")["cell"]
    with pytest.raises(ValueError, match="'val_loss'"):
        searcher.set_search_properties("val_loss", "min", {})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"samples_per_cell": 0}, "samples_per_cell"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"completed_value": "median"}, "'median'"),
        ({"mode": "maximize"}, "'maximize'"),
    ],
)
def test_constructor_arguments_are_validated(kwargs, match):
    args = {"samples_per_cell": 1, "max_epochs": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        CellSearcher(load_space("bn_dropout").named_cells(), **args)
