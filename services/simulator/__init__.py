"""A B2B company's month of lead events (the demo, tests and the benchmark use it).

`simulate_month(now, seed)` gives the calendar month before `now` (Europe/Berlin) as contract
§1-2 envelopes in the order upstream systems deliver them, deterministic by seed. See month.py.
"""
from services.simulator.month import SimulatedMonth, previous_month, route_of, simulate_month

__all__ = ["SimulatedMonth", "previous_month", "route_of", "simulate_month"]
