"""What the commands report and how: the report protocol and JSON-or-text output (base.py),
classification metrics (metrics.py), tables (tables.py) and figures (plots.py, matplotlib optional)."""
