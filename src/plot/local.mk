# Cairo plots (PNG, SVG, PDF by extension).
