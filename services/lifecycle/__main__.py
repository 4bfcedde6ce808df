"""`python -m services.lifecycle`: run the lifecycle service (settings from LEADFLOW_* variables)."""
import sys

from services.lifecycle.app import main

sys.exit(main())
