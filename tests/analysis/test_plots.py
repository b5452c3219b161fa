"""Each plot's info is computed correctly, and each drawing is a non-empty PNG."""

import numpy as np
import pytest

from analysis import make_tables, run_analysis, write_plots
from analysis import plots as P
from synthetic import blog_trials, cells, make_epochs, make_trials

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def analysis_rates():
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc", "conv"], order=["bn_first", "dropout_first"]),
                     n_per_cell=5, rate_range={"p_fc": (0.05, 0.6)}, effect=lambda f: 0.01 * (f["bn"] != "none"))
    return run_analysis(make_tables(df, make_epochs(df)), n_boot=100, importance=True)


@pytest.fixture(scope="module")
def analysis_blog():
    df = blog_trials(0, n_per_cell=3)
    return run_analysis(make_tables(df, make_epochs(df)), n_boot=50, importance=False)


def assert_png(path):
    """A PNG that shows something: several colours and a non-white area, not a blank canvas."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG
    pixels = imread(path)[..., :3]  # RGB in [0, 1]
    assert min(pixels.shape[:2]) >= 200
    assert len(np.unique(pixels.reshape(-1, 3).round(2), axis=0)) > 8
    assert (pixels.min(axis=-1) < 0.9).mean() > 0.02  # more than 2% of the pixels are drawn on


def test_rate_interaction(analysis_rates, tmp_path):
    info = P.rate_interaction_info(analysis_rates.rate_fits, "best_val_acc")
    assert set(info.rates) == {"p_fc"}
    assert [c.bn for c in info.rates["p_fc"]] == ["none", "pre_act"]
    curve = info.rates["p_fc"][0]
    assert np.all(curve.band_low <= curve.band_high + 1e-9)
    assert_png(P.plot_rate_interaction(info, tmp_path / "a.png"))


def test_placement_interaction(analysis_rates, tmp_path):
    info = P.placement_interaction_info(analysis_rates.design)
    assert info.levels == ["none", "fc", "conv"]
    cells = analysis_rates.design.cells
    expected = cells[(cells["bn"] == "none") & (cells["dropout"] == "fc")]["mean"].mean()
    assert info.series["none"][0][1] == pytest.approx(100 * expected)
    assert_png(P.plot_placement_interaction(info, tmp_path / "b.png"))


def test_heatmap_splits_by_order(analysis_rates, tmp_path):
    info = P.heatmap_info(analysis_rates.design)
    assert set(info.panels) == {"order=bn_first", "order=dropout_first"}
    rows, cols, values, counts = info.panels["order=dropout_first"]
    assert rows == ["pre_act"] and cols == ["conv"]
    assert_png(P.plot_heatmap(info, tmp_path / "c.png"))


def test_isolation_shows_the_best_trial_per_value(analysis_rates, tmp_path):
    info = P.isolation_info(analysis_rates.design)
    assert set(info.factors) == {"bn", "dropout", "order", "p_fc"}
    bn = info.factors["bn"].set_index("label")
    trials = analysis_rates.design.trials
    assert bn.loc["pre_act", "best"] == pytest.approx(100 * trials.loc[trials["bn"] == "pre_act", "score"].max())
    assert_png(P.plot_isolation(info, tmp_path / "d.png"))


def test_learning_curves_of_each_cells_best_trial(analysis_rates, tmp_path):
    info = P.learning_curves_info(analysis_rates.design, analysis_rates.tables.epochs, max_cells=3)
    cells = analysis_rates.design.cells
    assert len(info.curves) == 3 and info.left_out == len(cells) - 3
    best_cell = cells.iloc[0]
    label, first = next(iter(info.curves.items()))
    assert best_cell["best_trial_id"] in label
    assert {"train_loss", "val_loss", "train_acc", "val_acc"} <= set(first.columns)
    assert_png(P.plot_learning_curves(info, tmp_path / "e.png"))


def test_ranking_and_importance(analysis_rates, tmp_path):
    info = P.ranking_info(analysis_rates.ranking)
    assert list(info.score) == sorted(info.score, reverse=True)
    assert_png(P.plot_ranking(info, tmp_path / "f.png"))
    imp = P.importance_info(analysis_rates.importance)
    assert imp is not None and sum(imp.values) == pytest.approx(1.0)
    assert set(imp.kinds) <= {"scientific", "nuisance"}
    assert_png(P.plot_importance(imp, tmp_path / "g.png"))


def test_blog_ablation_experiments_side_by_side(analysis_blog, tmp_path):
    info = P.experiments_info(analysis_blog.design)
    assert list(info.table["experiment"]) == list(range(1, 9))
    assert_png(P.plot_experiments(info, tmp_path / "h.png"))
    curves = P.blog_curves_info(analysis_blog.design, analysis_blog.tables.epochs)
    assert len(curves.curves) == 8 and next(iter(curves.curves)).startswith("experiment 1")
    # Drawing two of the eight panels is enough to check the drawing (and much faster).
    two = P.CurvesInfo(dict(list(curves.curves.items())[:2]), curves.title)
    assert_png(P.plot_learning_curves(two, tmp_path / "i.png"))


def test_write_plots_says_why_a_plot_is_missing(tmp_path):
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc"]), n_per_cell=3)
    analysis = run_analysis(make_tables(df), n_boot=20, importance=False)
    plots = write_plots(analysis, tmp_path)
    assert {"interaction", "heatmap", "isolation", "ranking"} <= set(plots.files)
    assert "epochs.csv" in plots.skipped["learning_curves"]
    assert "importance" in plots.skipped
    for path in plots.files.values():
        assert_png(path)


def test_a_plot_whose_drawing_raises_is_skipped_with_the_error_and_the_others_are_drawn(tmp_path, monkeypatch):
    # One plot's bug must not cost the report of a study that has finished training.
    df = make_trials(0, cell_list=cells(bn=["none", "pre_act"], dropout=["none", "fc"]), n_per_cell=3)
    analysis = run_analysis(make_tables(df), n_boot=20, importance=False)

    def broken(info, path):
        raise TypeError("unsupported operand type(s) for -: 'float' and 'NoneType'")

    monkeypatch.setattr(P, "plot_ranking", broken)
    plots = write_plots(analysis, tmp_path)
    assert "ranking" not in plots.files and plots.skipped["ranking"].startswith(P.DRAWING_FAILED)
    assert "TypeError: unsupported operand" in plots.skipped["ranking"]
    assert {"interaction", "heatmap", "isolation"} <= set(plots.files)
