"""vepo_viz.tasks"""
