"""HTML export: a self-contained page (no scripts, no network) of coloured tokens with
every number in each token's tooltip, the summary, the settings and the token table."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from vepo_viz.render.colors import DEFAULT_COLORMAP, check_colormap, hex_colors, rgba
from vepo_viz.render.data import (
    DEFAULT_SIGNALS,
    SELECTION_ROW,
    display_token,
    summary,
    table,
    token_frame,
)
from vepo_viz.render.export.panels import make_panel
from vepo_viz.render.labels import model_label
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE

if TYPE_CHECKING:  # pragma: no cover
    from vepo_viz.results import TokenAnalysis

_HTML_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 60em; color: #222; line-height: 1.4; }
h1 { font-size: 1.3em; } h2 { font-size: 1.05em; margin-top: 1.6em; }
.tokens { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; white-space: pre-wrap;
          line-height: 2.1; }
.tok { padding: 0.15em 0.05em; border-radius: 2px; }
.legend span { display: inline-block; padding: 0.1em 0.5em; margin-right: 0.5em;
               border-radius: 2px; border: 1px solid #ccc; }
.bar { display: inline-block; width: 12em; height: 0.8em; vertical-align: middle;
       border: 1px solid #999; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
td:nth-child(2) { text-align: left; font-family: monospace; white-space: pre; }
.meta { color: #555; font-size: 0.9em; }
"""


def _token_title(row) -> str:
    return (
        f"#{row['index']} {row['token']!r}\n"
        f"entropy H = {row['entropy']:.4f} nats\n"
        f"noisy entropy H' = {row['entropy_noisy']:.4f}\n"
        f"entropy gap = {row['entropy_gap']:+.4f}\n"
        f"JSD = {row['jsd']:.4f}\nKL = {row['kl']:.4f}\n"
        f"visual sensitivity = {row['visual_sensitivity']:.4f}\nscore = {row['score']:.4f}\n"
        f"selected: VEPO {'yes' if row['selected_vepo'] else 'no'}, "
        f"entropy {'yes' if row['selected_entropy'] else 'no'}"
    )


def html_document(
    analysis: TokenAnalysis,
    signals: Sequence[str] = DEFAULT_SIGNALS + (SELECTION_ROW,),
    *,
    cmap: str = DEFAULT_COLORMAP,
    color_scale: str = DEFAULT_COLOR_SCALE,
) -> str:
    """A self-contained HTML page (no scripts, no network): coloured tokens per signal with
    every number in each token's tooltip, the summary, the settings and the token table.
    `color_scale` is one of render.scales.COLOR_SCALES."""
    frame = token_frame(analysis)
    titles = [_token_title(row) for _, row in frame.iterrows()]
    sc = analysis.settings.scoring
    s = summary(analysis)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>vepo-viz token analysis</title>",
        f"<style>{_HTML_CSS}</style></head><body>",
        "<h1>vepo-viz: per-token analysis</h1>",
        f'<p class="meta">model <code>{html.escape(model_label(analysis.model_id))}</code>; '
        f"question: {html.escape(str(analysis.question))}<br>"
        f"score {html.escape(sc.score_type)}, alpha {sc.alpha:.2f}, top "
        f"{sc.ratio:.0%} per {html.escape(sc.scope)}; {s.n_tokens} tokens; VEPO picks "
        f"{s.n_vepo}, entropy picks {s.n_entropy}, both {s.n_both}; "
        f"{_fmt_pct(s.vepo_low_entropy)} of VEPO's picks have below-median entropy.</p>",
    ]
    for key in signals:
        panel = make_panel(analysis, frame, key, check_colormap(cmap), color_scale)
        parts.append(f"<h2>{html.escape(panel.title)}</h2>")
        if panel.continuous:
            stops = hex_colors(rgba(np.linspace(0, 1, 9), 0, 1, cmap))
            low, high = panel.end_labels()
            parts.append(
                f'<p class="legend">{low} <span class="bar" style="background: '
                f'linear-gradient(to right, {", ".join(stops)});"></span> {high}</p>'
            )
        else:
            parts.append(
                '<p class="legend">'
                + "".join(
                    f'<span style="background:{c}">{html.escape(n)}</span>' for c, n in panel.legend
                )
                + "</p>"
            )
        spans = []
        for i, token in enumerate(frame["token"]):
            shown = token if token.strip() else display_token(token)
            spans.append(
                f'<span class="tok" style="background:{panel.face[i]};color:{panel.ink[i]}" '
                f'title="{html.escape(titles[i])}">{html.escape(shown)}</span>'
            )
        parts.append(f'<div class="tokens">{"".join(spans)}</div>')
    parts.append("<h2>Per-token values</h2>")
    parts.append(table(analysis).to_html(index=False, escape=True, border=0))
    settings = analysis.settings.to_dict()
    parts.append("<h2>Settings</h2><pre>" + html.escape(_pretty(settings)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


def _fmt_pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.0f}%"
