"""vepo_viz.train"""
