"""vepo_viz.models"""
