"""`python -m vepo_viz` is the same as the `vepo-viz` console script."""

from vepo_viz.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
