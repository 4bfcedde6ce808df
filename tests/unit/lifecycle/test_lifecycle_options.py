from __future__ import annotations

import pytest

from services.common.config import ConfigError
from services.lifecycle.service import LifecycleOptions, load_options


def test_defaults_batch_rounds_at_most_every_50_ms():
    options = load_options({})
    assert options == LifecycleOptions()
    assert options.round_interval_ms == 50
    assert options.max_records == 5000


def test_environment_overrides():
    options = load_options({"LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS": "0", "LEADFLOW_LIFECYCLE_MAX_RECORDS": "200",
                            "LEADFLOW_LIFECYCLE_PIPELINE": "0"})
    assert (options.round_interval_ms, options.max_records, options.pipeline) == (0, 200, False)


def test_a_value_that_is_not_a_number_names_the_variable():
    with pytest.raises((ConfigError, ValueError), match="LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS"):
        load_options({"LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS": "soon"})


def test_a_negative_interval_is_refused_and_zero_only_where_it_means_something():
    with pytest.raises(ConfigError, match="ROUND_INTERVAL_MS must be zero or more"):
        load_options({"LEADFLOW_LIFECYCLE_ROUND_INTERVAL_MS": "-5"})
    with pytest.raises(ConfigError, match="MAX_RECORDS must be positive"):
        load_options({"LEADFLOW_LIFECYCLE_MAX_RECORDS": "0"})
