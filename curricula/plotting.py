"""One picture of a teacher's sampling distribution.

Recent parameter vectors are scattered over the first two parameter dimensions and coloured by a
per-episode value (ALP, competence); a 1-D parameter space is drawn as parameter against that value.
Gaussians are drawn as two-standard-deviation ellipses and RIAC regions as rectangles, edge
coloured on a scale of their own (mean ALP, learning progress, region ALP). The figure is built without
pyplot, so plotting never touches a global backend or figure registry (safe in a training process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle


def plot_distribution(
    path: str | Path,
    points: np.ndarray,
    values: np.ndarray,
    value_label: str,
    low: np.ndarray,
    high: np.ndarray,
    title: str,
    gaussians: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    regions: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    shape_label: str = "",
) -> None:
    """``points`` (n, d) coloured by ``values`` (n,), plus ellipses or boxes coloured by their own values.

    ``gaussians``: (means, covariances, values) of mixture components whose *last* coordinate is on
    the scale of ``values`` (so a 1-D space shows them in the (parameter, value) plane). ``regions``:
    (lows, highs, values) of axis-aligned boxes of the parameter space. ``shape_label`` names the
    quantity that colours the shapes.
    """
    ndims = low.size
    points = np.asarray(points, dtype=np.float64).reshape(-1, ndims)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    xy = points[:, :2] if ndims >= 2 else np.column_stack([points[:, 0], values])

    fig = Figure(figsize=(7.0, 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    scatter = ax.scatter(xy[:, 0], xy[:, 1], c=values, cmap="viridis", s=8, alpha=0.8, norm=_norm(values))
    fig.colorbar(scatter, ax=ax, label=value_label)

    shapes = gaussians if gaussians is not None else regions
    if shapes is not None:
        cmap, norm = colormaps["plasma"], _norm(shapes[2])
        if gaussians is not None:
            dims = [0, 1] if ndims >= 2 else [0, -1]  # picture axes, in Gaussian coordinates
            for mean, cov, value in zip(*gaussians):
                eigvals, eigvecs = np.linalg.eigh(cov[np.ix_(dims, dims)])
                angle = np.degrees(np.arctan2(eigvecs[1, -1], eigvecs[0, -1]))
                width, height = 4.0 * np.sqrt(np.maximum(eigvals[::-1], 0.0))  # two standard deviations
                ax.add_patch(
                    Ellipse(mean[dims], width, height, angle=angle, fill=False, lw=2.0, ec=cmap(norm(value)))
                )
        else:
            top = max(float(values.max()), 1.0) if values.size else 1.0
            for box_low, box_high, value in zip(*regions):
                if ndims >= 2:
                    corner, size = box_low[:2], box_high[:2] - box_low[:2]
                else:
                    corner, size = (box_low[0], 0.0), (box_high[0] - box_low[0], top)
                ax.add_patch(Rectangle(corner, size[0], size[1], fill=False, lw=1.5, ec=cmap(norm(value))))
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=shape_label)

    ax.set_xlim(low[0], high[0])
    ax.set_xlabel("parameter 0")
    if ndims >= 2:
        ax.set_ylim(low[1], high[1])
        ax.set_ylabel("parameter 1")
    else:
        ax.set_ylabel(value_label)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(Path(path), dpi=100)


def _norm(values: np.ndarray) -> Normalize:
    values = np.asarray(values, dtype=np.float64)
    top = float(values.max()) if values.size else 1.0
    return Normalize(vmin=0.0, vmax=max(top, 1e-6))
