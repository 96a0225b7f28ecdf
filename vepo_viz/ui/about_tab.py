"""The About tab: what the numbers mean, the colours of the selection row, and the
serving policy (who may do what on this server)."""

from __future__ import annotations

import gradio as gr

from vepo_viz.render.colors import CATEGORY_COLORS, CATEGORY_LABELS
from vepo_viz.ui.policy import ServingPolicy
from vepo_viz.ui.scope_banner import TRUST_NOTES, scope_banner

ABOUT = """
### What you are looking at

For each token of the model's answer, vepo-viz runs the model twice over the same tokens:
once with the image (clean, distribution *p*) and once with a counterfactual image
(*q*, default: Gaussian noise with sigma = 2 on the normalised pixels). Per token:

- **entropy H** of *p* (nats): how unsure the model is. The "80/20" rule trains on the
  top-20% highest-entropy tokens ("forking tokens").
- **visual sensitivity v** = 1 - (1 - JSD^)^alpha (1 - |dH|^)^(1-alpha): how much the
  image changes the prediction (JSD between *p* and *q*, and the entropy gap, each
  min-max normalised over the response).
- **VEPO score s** = v * H^ (type D of Jin et al. 2026); VEPO trains on the top 20% by s.

The selection row shows the two rules together: **VEPO only** tokens are the "visual
forking tokens" that entropy-only training skips, often low-entropy tokens read off the
image (a colour, a number, "left").

Changing ratio, alpha, score type or scope re-scores instantly from the stored numbers;
changing the image, question, response, model or counterfactual re-runs the model.
Click a token in the heatmap (or pick it in the list, or click a table row) for its top
candidates under the clean and the perturbed image.
"""


def models_markdown() -> str:
    """The VLM families the app knows (models.families.FAMILIES), as the About tab shows."""
    from vepo_viz.models.families import FAMILIES

    rows = "\n".join(
        f"| {f.label} | `{f.name}` | {f.layout or 'inferred'} | {f.description} |"
        for f in FAMILIES.entries()
    )
    return (
        "### Models\n\nAny transformers vision-language model loads; these families are "
        "known (others get the pixel layout their processor's output implies):\n\n"
        "| family | model_type | pixel layout | |\n|---|---|---|---|\n" + rows
    )


def build_about_tab(policy: ServingPolicy | None = None) -> None:
    """Lay out the About tab (inside the enclosing gr.Tab)."""
    legend_html = "".join(
        f'<span style="background:{CATEGORY_COLORS[c]}">{CATEGORY_LABELS[c]}</span>'
        for c in CATEGORY_COLORS
    )
    gr.HTML(f'<p class="vv-legend">{legend_html}</p>')
    scope_banner("vv-scope-about")
    gr.Markdown(ABOUT)
    gr.Markdown(TRUST_NOTES, elem_id="vv-trust")
    gr.Markdown(models_markdown(), elem_id="vv-families")
    gr.Markdown((policy or ServingPolicy()).describe(), elem_id="vv-policy")
