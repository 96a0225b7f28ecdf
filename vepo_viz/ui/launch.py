"""`python app.py`: build the app and serve it (127.0.0.1:7860 unless told otherwise)."""

from __future__ import annotations

import argparse
import logging
import os


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="vepo-viz: which tokens of a VLM's answer look at the image (Gradio app).",
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("VEPO_VIZ_HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1; 0.0.0.0 serves the network, e.g. in Docker)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("VEPO_VIZ_PORT", "7860")),
        help="port (default 7860)",
    )
    parser.add_argument(
        "--share", action="store_true", help="also open a public gradio.live link (off by default)"
    )
    parser.add_argument(
        "--model",
        default=os.environ.get("VEPO_VIZ_MODEL", "embedded"),
        help="model the app starts with: 'embedded', a local folder or a hub id "
        "(e.g. Qwen/Qwen2.5-VL-3B-Instruct)",
    )
    parser.add_argument(
        "--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N, mps"
    )
    parser.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16 or float16 (default: bf16 on GPU, fp32 on CPU)",
    )
    parser.add_argument(
        "--preload", action="store_true", help="load the model before serving (fail fast)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from vepo_viz.ui.app import build_app, launch_kwargs
    from vepo_viz.ui.backend import ModelBackend, model_key

    backend = ModelBackend(device=args.device, dtype=args.dtype)
    if args.preload:
        backend.model(model_key(args.model))
    demo = build_app(backend, default_model=args.model)
    demo.queue(default_concurrency_limit=4)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_kwargs())
    return 0
