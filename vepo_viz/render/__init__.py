"""vepo_viz.render"""
