"""Panels and legends shared by every figure family: a grid of panels sized by its panels
and its legend beside them, the legend entries naming series and cache conditions, and
a legend inside one axes or beside it."""

from __future__ import annotations

import matplotlib.pyplot as plt

from imgbench.report.plotting.labels import Labels
from imgbench.report.plotting.style import CACHE_STYLE

# Inches: the figure's title above a grid of panels.
TITLE_HEIGHT = 0.9


def legend_width(handles) -> float:
    """Inches a legend of ``handles`` (fontsize small) takes beside the panels."""
    return 0.9 + 0.075 * max((len(h.get_label()) for h in handles), default=0)


def panel_grid(rows: int, columns: int, panel_size: tuple[float, float], handles):
    """A figure of ``rows`` x ``columns`` panels sharing their axes, each ``panel_size``
    inches, with room for the title above and for a legend of ``handles`` beside them
    (``legend_beside``): one panel makes an ordinary figure. Returns (figure, axes) with
    ``axes[row][column]``."""
    width, height = panel_size
    return plt.subplots(
        rows,
        columns,
        figsize=(width * columns + legend_width(handles), height * rows + TITLE_HEIGHT),
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )


def legend_beside(fig, handles) -> None:
    """The figure's legend right of its panels, at the top; the title (left-aligned over
    the panels, ``title_over_panels``) cannot run into it."""
    fig.legend(handles=handles, loc="outside right upper", fontsize="small")


def title_over_panels(fig, text: str, **options) -> None:
    """The figure's title, left-aligned over its panels."""
    fig.suptitle(text, x=0.02, ha="left", **options)


def axes_legend(ax, *, beside: bool):
    """The legend of ``ax``: beside the axes (where many entries inside would cover the
    lines or bars) or inside them."""
    if beside:
        return ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return ax.legend(fontsize="small")


def series_handles(series_list, colours: dict[str, str], labels: Labels) -> list:
    """A legend entry per series: its colour with a round marker, named by ``labels``."""
    return [plt.Line2D([], [], color=colours[s], marker="o", label=labels(s)) for s in series_list]


def condition_handles(conditions) -> list:
    """A legend entry per read condition: a grey line in the condition's style."""
    return [
        plt.Line2D([], [], color="grey", linestyle=CACHE_STYLE.get(c, "-"), label=f"{c} read")
        for c in conditions
    ]
