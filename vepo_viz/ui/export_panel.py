"""The Analyze tab's "Export for papers, save and load" accordion.

Export writes the current analysis in a paper format (vepo_viz.render.export) or as a
saved-analysis JSON; Load brings such a JSON back, exactly as saved, and sets the inputs
(the image included, so Analyze right after Load reproduces it) and the settings controls
to the ones it was made with (no model).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import gradio as gr

from vepo_viz.render import export as rexport
from vepo_viz.render.colors import COLORMAPS
from vepo_viz.render.data import SELECTION_ROW, SIGNALS
from vepo_viz.render.scales import DEFAULT_COLOR_SCALE
from vepo_viz.ui import handlers as h
from vepo_viz.ui.backend import EMBEDDED
from vepo_viz.ui.controls import ControlValues
from vepo_viz.ui.errors import user_errors
from vepo_viz.ui.events import view_updates
from vepo_viz.ui.session import load_session, restored_image

if TYPE_CHECKING:
    from vepo_viz.ui.analyze_tab import AnalyzeTab


@dataclass(frozen=True)
class ExportPanel:
    """The accordion's components; `options()` are the export event's inputs by name."""

    fmt: gr.Radio
    panels: gr.CheckboxGroup
    width_in: gr.Number
    font: gr.Dropdown
    font_size: gr.Number
    dpi: gr.Number
    cmap: gr.Dropdown
    latex_signal: gr.Dropdown
    legend: gr.Checkbox
    colorbar: gr.Checkbox
    export: gr.Button
    load: gr.UploadButton
    file: gr.File

    def options(self) -> dict[str, Any]:
        """{API parameter name of /export: component}, in the API's order."""
        return {
            "export_format": self.fmt,
            "panel_names": self.panels,
            "width_inches": self.width_in,
            "font_family": self.font,
            "font_size_pt": self.font_size,
            "dpi_value": self.dpi,
            "colormap": self.cmap,
            "show_legend": self.legend,
            "show_colorbar": self.colorbar,
            "latex_colours_by": self.latex_signal,
        }


def build_export_panel() -> ExportPanel:
    """Lay out the accordion (inside the Analyze tab's views column)."""
    signal_choices = [(SIGNALS[k][0], k) for k in SIGNALS] + [("selection", SELECTION_ROW)]
    defaults = rexport.FigureOptions()
    with gr.Accordion("Export for papers, save and load", open=False):
        with gr.Row():
            fmt = gr.Radio(
                list(rexport.EXPORT_FORMATS),
                value="pdf",
                label="format",
                elem_id="vv-export-format",
            )
            panels = gr.CheckboxGroup(
                signal_choices, value=list(defaults.signals), label="panels (figures, HTML)"
            )
        with gr.Row():
            width_in = gr.Number(value=6.5, label="width (inches)", minimum=1, maximum=40)
            font = gr.Dropdown(rexport.available_fonts(), value="DejaVu Sans", label="font")
            font_size = gr.Number(value=9, label="font size (pt)", minimum=3, maximum=72)
            dpi = gr.Number(value=300, precision=0, label="dpi (PNG)", minimum=30, maximum=1200)
        with gr.Row():
            cmap = gr.Dropdown(list(COLORMAPS), value="cividis", label="colour map")
            latex_signal = gr.Dropdown(signal_choices, value="score", label="LaTeX colours by")
            legend = gr.Checkbox(value=True, label="legend")
            colorbar = gr.Checkbox(value=True, label="colour bar")
        with gr.Row():
            export = gr.Button("Export", elem_id="vv-export")
            load = gr.UploadButton(
                "Load a saved analysis (.json)", file_types=[".json"], elem_id="vv-load"
            )
        file = gr.File(label="Download", interactive=False, elem_id="vv-export-file")
    return ExportPanel(
        fmt=fmt,
        panels=panels,
        width_in=width_in,
        font=font,
        font_size=font_size,
        dpi=dpi,
        cmap=cmap,
        latex_signal=latex_signal,
        legend=legend,
        colorbar=colorbar,
        export=export,
        load=load,
        file=file,
    )


def wire_export_panel(tab: AnalyzeTab) -> None:
    """Export, save and load events (they never touch the model)."""
    panel = tab.export

    @user_errors
    def on_export(state, **options):
        return h.export_file(
            state,
            options["export_format"],
            signals=options["panel_names"],
            width_in=options["width_inches"],
            font_family=options["font_family"],
            font_size=options["font_size_pt"],
            dpi=options["dpi_value"],
            cmap=options["colormap"],
            legend=options["show_legend"],
            colorbar=options["show_colorbar"],
            latex_signal=options["latex_colours_by"],
        )

    panel.export.click(
        on_export,
        [tab.session],
        panel.file,
        inputs_kwargs=panel.options(),
        api_name="export",
        concurrency_limit=4,
    )

    @user_errors
    def on_load(file, state):
        scale = getattr(state, "color_scale", None) or DEFAULT_COLOR_SCALE
        new, view, images = load_session(getattr(file, "name", file), scale)
        analysis = new.current
        outputs = [tab.session, *tab.view_outputs(), *tab.image_outputs()]
        return {
            **dict(zip(outputs, (new, *view_updates(view), *images), strict=True)),
            tab.question: analysis.question,
            tab.response: analysis.response if not analysis.generated else "",
            **tab.controls.show(ControlValues.of(analysis.settings)),
            tab.model: analysis.model_id or EMBEDDED,
            tab.image: restored_image(analysis) or gr.skip(),
        }

    panel.load.upload(
        on_load,
        [panel.load, tab.session],
        [
            tab.session,
            *tab.view_outputs(),
            *tab.image_outputs(),
            tab.question,
            tab.response,
            *tab.controls.load_outputs(),
            tab.model,
            tab.image,
        ],
        api_name="load",
        concurrency_limit=4,
    )
