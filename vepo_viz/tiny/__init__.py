"""vepo_viz.tiny"""
