"""The training-curve figure labels its x-axis with what one point is (optimizer steps by default)."""

from __future__ import annotations

from wavefin_core.evaluation.plots import plot_training_curve


def test_loss_curve_x_axis_says_steps_not_epochs():
    fig = plot_training_curve([1.0, 0.5, 0.25, 0.2])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "training step"
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3, 4]  # one point per recorded step
    assert ax.get_yscale() == "log"


def test_loss_curve_can_be_per_epoch():
    fig = plot_training_curve({"train": [0.9, 0.8], "val": [1.0, 0.95]}, unit="epoch")
    assert fig.axes[0].get_xlabel() == "training epoch"
    assert len(fig.axes[0].lines) == 2
