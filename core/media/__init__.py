"""Content and its measures: frame sources, 360-degree geometry (viewport, ROI), metrics and
image I/O."""
