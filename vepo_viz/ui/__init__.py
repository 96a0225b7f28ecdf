"""vepo_viz.ui"""
