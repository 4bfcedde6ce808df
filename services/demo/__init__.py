"""`leadflow demo`: a simulated month of a B2B company through the real pipeline, then a summary.

command.py wires it; stream.py sends the month (web forms and CRM over HTTP, the dialer into
leadflow.inbound) and waits for the services; summary.py reads what came out (PostgreSQL,
Prometheus); render.py prints it."""
