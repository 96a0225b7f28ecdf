"""`python -m vepo_viz.repro ...`: the mini-reproduction's command (vepo_viz.repro.run)."""

from vepo_viz.repro.run import main

if __name__ == "__main__":
    raise SystemExit(main())
