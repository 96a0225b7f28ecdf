"""Training curves from metrics.jsonl: interactive (plotly, the Train tab) and static
(matplotlib, the docs). Several runs overlay, one colour per run; for the selected-vs-all
token statistics the solid line is the selected tokens, the dashed line all tokens."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("reward", "Reward (train, mean)", ("reward",)),
    ("heldout", "Held-out accuracy (greedy)", ("heldout_acc",)),
    ("entropy", "Entropy: selected (solid) vs all (dashed)", ("entropy_selected", "entropy_all")),
    ("vis", "Visual sensitivity: selected vs all", ("vis_selected", "vis_all")),
    (
        "visual_tokens",
        "Image-read tokens: share (solid), recall (dashed)",
        ("share_visual", "recall_visual"),
    ),
    ("kl", "KL to reference (k3) / approx KL to rollout", ("kl", "approx_kl")),
    ("clip", "Clip fraction", ("clip_fraction",)),
    ("time", "Step time (s)", ("step_s",)),
    ("selected", "Share of tokens trained on", ("selected_fraction",)),
)
"""(key, title, columns): the second column, when present, is drawn dashed."""

PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#ff7f0e",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#7f7f7f",
    "#bcbd22",
)


def _series(df: pd.DataFrame, column: str, smooth: int = 1) -> pd.DataFrame:
    if df.empty or column not in df or "step" not in df:
        return pd.DataFrame(columns=["step", column])
    part = df[["step", column]].dropna()
    part = part.groupby("step", as_index=False).last()
    if smooth > 1 and len(part) > 1:
        part[column] = part[column].rolling(smooth, min_periods=1).mean()
    return part


def plotly_curves(runs: dict[str, pd.DataFrame], smooth: int = 1):
    """A plotly figure of every panel with all `runs` ({name: metrics DataFrame}) overlaid."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    n_cols = 2
    n_rows = (len(PANELS) + n_cols - 1) // n_cols
    fig = make_subplots(
        rows=n_rows,
        cols=n_cols,
        subplot_titles=[title for _, title, _ in PANELS],
        vertical_spacing=0.08,
        horizontal_spacing=0.08,
    )
    for index, (name, df) in enumerate(runs.items()):
        color = PALETTE[index % len(PALETTE)]
        for panel_index, (_, _, columns) in enumerate(PANELS):
            row, col = panel_index // n_cols + 1, panel_index % n_cols + 1
            for c_index, column in enumerate(columns):
                part = _series(df, column, 1 if column == "heldout_acc" else smooth)
                if part.empty:
                    continue
                fig.add_trace(
                    go.Scatter(
                        x=part["step"],
                        y=part[column],
                        mode="lines+markers" if column == "heldout_acc" else "lines",
                        name=name,
                        legendgroup=name,
                        showlegend=panel_index == 0 and c_index == 0,
                        line={"color": color, "dash": "dash" if c_index else "solid"},
                        hovertemplate=f"{name}<br>{column}: %{{y:.4g}}<br>step %{{x}}<extra></extra>",
                    ),
                    row=row,
                    col=col,
                )
    fig.update_layout(
        height=260 * n_rows,
        margin={"l": 40, "r": 20, "t": 70, "b": 30},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        template="plotly_white",
    )
    fig.update_xaxes(title_text="step", row=n_rows)
    return fig


def matplotlib_curves(
    runs: dict[str, pd.DataFrame],
    path: str | Path,
    panels: tuple[str, ...] = ("reward", "heldout", "entropy", "vis"),
    smooth: int = 1,
    colors: dict[str, str] | None = None,
) -> Path:
    """A PNG of the chosen panels (PANELS keys) with `runs` overlaid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    chosen = [p for p in PANELS if p[0] in panels]
    fig, axes = plt.subplots(1, len(chosen), figsize=(4.2 * len(chosen), 3.4), squeeze=False)
    for index, (name, df) in enumerate(runs.items()):
        color = (colors or {}).get(name, PALETTE[index % len(PALETTE)])
        for ax, (_, title, columns) in zip(axes[0], chosen, strict=True):
            for c_index, column in enumerate(columns):
                part = _series(df, column, 1 if column == "heldout_acc" else smooth)
                if part.empty:
                    continue
                ax.plot(
                    part["step"],
                    part[column],
                    color=color,
                    linestyle="--" if c_index else "-",
                    marker="o" if column == "heldout_acc" else None,
                    markersize=3,
                    label=name if c_index == 0 else None,
                )
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
