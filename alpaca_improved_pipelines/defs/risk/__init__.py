"""Risk assets: stress scenarios (grids and historical windows) and factor attribution."""
