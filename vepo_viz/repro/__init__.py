"""The mini-reproduction: token-selection rules x seeds on the embedded model, same steps
and data (docs/mini_reproduction.md). An experiment built on training, not part of it.

    python -m vepo_viz.repro --init tiny --out runs/repro ...   # the grid (run.py)
    python -m vepo_viz.repro.pool --out runs/pool ...           # a mined pool alone

Layout: run.py (the command: data, profile, the grid of `vepo-viz train` processes, the
summary), pool.py (prompts with headroom), profile.py (what each rule selects on one set
of sampled responses, VEPO's premise), summary.py (per-rule numbers over seeds), doc.py
(tables, figures and the doc blocks). Above vepo_viz.train: training never imports it.
"""
