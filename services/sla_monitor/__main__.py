"""`python -m services.sla_monitor`: run the SLA monitor (settings from LEADFLOW_* variables)."""
import sys

from services.sla_monitor.app import main

sys.exit(main())
