"""Counters of the running services, read from their /metrics, to know when they have caught up."""
from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def metric_total(session: aiohttp.ClientSession, url: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` (a counter's `_total` sample) whose labels include `labels`."""
    async with session.get(url) as resp:
        text = await resp.text()
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
