"""`leadflow console`: the read-only web console (services/console/app.py)."""
