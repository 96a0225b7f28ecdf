"""The embedded model's scope as a short banner (Analyze and About tabs): what it is,
what it knows, and how to point the app at a real VLM (text: vepo_viz.ood)."""

from __future__ import annotations

import gradio as gr

from vepo_viz.ood import EMBEDDED_DESCRIPTION

TRUST_NOTES = """
### When the numbers mean little

- **Noise floor.** Each analysis also measures what JSD and |dH| look like when the image
  did not change (for a generated response, one more pass with the clean image; always,
  the rounding of float32). Tokens at or below it have no visual signal (the table's
  `at_floor`, grey in a notebook). When every token is there, a warning says so: the
  per-response normalisation then turns float noise into a 0-1 visual sensitivity, and
  the VEPO picks are noise. The reference scores are left as defined; the
  `skip_floor` setting (`--skip-floor true` on the CLI) makes the selection skip them.
- **Selection stability.** With K > 1 counterfactual draws, each draw is scored on its
  own: `selection_share` is the share of draws that select a token, and the summary
  gives the Jaccard between draws. With K = 1 stability is unknown.
- **Out-of-distribution input.** With the embedded model, an image unlike the suite's
  (size, background) or a question outside its templates gets a warning above the result.
"""


def scope_banner(elem_id: str) -> gr.Markdown:
    """A one-paragraph banner on the embedded model's scope."""
    return gr.Markdown(f"**About the embedded model.** {EMBEDDED_DESCRIPTION}", elem_id=elem_id)
