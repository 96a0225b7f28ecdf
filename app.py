"""Launch the vepo-viz Gradio app: `python app.py [--host 127.0.0.1] [--port 7860] [--share]`."""

from vepo_viz.ui.launch import main

if __name__ == "__main__":
    raise SystemExit(main())
