"""Policy as code: the built-in policy is contract §4, files are validated strictly."""
from __future__ import annotations

from datetime import date, time, timedelta
from pathlib import Path

import pytest

from services.sla_monitor.domain import PolicyError, load_policy, parse_policy
from services.sla_monitor.domain.policy import BUILTIN_SOURCE, Scope

REPO = Path(__file__).resolve().parents[3]
DEFAULT_TOML = (REPO / "services/sla_monitor/domain/default_policy.toml").read_text("utf-8")


def error_of(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.toml")
    return caught.value


# --- the built-in default == contract §4 --------------------------------------------------

def test_builtin_policy_is_the_contract_table():
    policy = load_policy()
    assert [rule.name for rule in policy.rules] == [
        "speed_to_lead", "sales_acceptance", "contact_attempts", "closed_loop_feedback",
        "marketing_weekly_volume", "rep_monthly_volume",
    ]
    speed = policy.rule("speed_to_lead")
    assert speed.settings.due == timedelta(hours=1) and speed.settings.business_time
    assert speed.scope == Scope(channel=frozenset({"website"}))
    assert policy.rule("sales_acceptance").settings.business_days == 2
    attempts = policy.rule("contact_attempts")
    assert attempts.settings.required_attempts == 6
    assert attempts.settings.decide_reasons == frozenset({"no_response"})
    assert attempts.settings_for("website", "enterprise", None, None).required_attempts == 8
    assert attempts.settings_for("website", "smb", None, None).required_attempts == 6
    feedback = policy.rule("closed_loop_feedback").settings
    assert feedback.due == timedelta(days=90) and not feedback.business_time
    weekly = policy.rule("marketing_weekly_volume").settings
    assert (weekly.target, weekly.min_fit_share, weekly.fit) == (50, 0.5, "good")
    assert policy.rule("rep_monthly_volume").settings.target == 150


def test_builtin_calendar_is_berlin_weekdays_nine_to_five():
    calendar = load_policy().calendars["default"]
    assert calendar.timezone == "Europe/Berlin"
    assert calendar.working_days == frozenset({0, 1, 2, 3, 4})
    assert (calendar.opens, calendar.closes) == (time(9), time(17))
    assert calendar.holidays == frozenset()


def test_fields_left_out_take_the_contract_defaults():
    policy = parse_policy("[slas.speed_to_lead]\n[slas.contact_attempts]\n")
    assert [rule.name for rule in policy.rules] == ["speed_to_lead", "contact_attempts"]
    assert policy.rule("speed_to_lead").scope.channel == frozenset({"website"})
    assert policy.rule("contact_attempts").settings_for(None, "enterprise", None, None).required_attempts == 8


def test_a_file_without_slas_keeps_the_builtin_slas():
    policy = parse_policy('[calendars.ny]\ntimezone = "America/New_York"\n[teams.us]\ncalendar = "ny"\n')
    assert [rule.name for rule in policy.rules] == [rule.name for rule in load_policy().rules]
    assert policy.team_calendars == {"us": "ny"}


# --- version = content hash -----------------------------------------------------------------

def test_version_is_a_short_content_hash():
    version = load_policy().version
    assert len(version) == 12 and int(version, 16) >= 0
    assert parse_policy(DEFAULT_TOML).version == version


def test_comments_layout_and_description_do_not_change_the_version():
    reformatted = "# a comment\n" + DEFAULT_TOML.replace("description = ", "description = 'x' #").replace(
        'due = "1h"', 'due   =   "60m"   # the same hour'
    )
    assert parse_policy(reformatted).version == load_policy().version


def test_changing_a_number_changes_the_version():
    changed = DEFAULT_TOML.replace("target = 150", "target = 149")
    assert parse_policy(changed).version != load_policy().version


# --- every number can change; overrides per segment or team; calendars per team ----------

def test_every_number_can_change():
    policy = parse_policy("""
[calendars.default]
timezone = "Asia/Tokyo"
working_days = ["sun", "mon"]
opens = "08:30"
closes = "24:00"
holidays = [2026-12-25, "2026-12-31"]
[slas.speed_to_lead]
due = "2h30m"
business_time = false
scope = {}
[slas.sales_acceptance]
business_days = 3
[slas.contact_attempts]
required_attempts = 4
decide_reasons = ["no_response", "bounced"]
overrides = []
[slas.closed_loop_feedback]
due = "4w"
[slas.marketing_weekly_volume]
target = 10
min_fit_share = 0.75
fit = "poor"
[slas.rep_monthly_volume]
target = 5
""")
    calendar = policy.calendars["default"]
    assert calendar.timezone == "Asia/Tokyo" and calendar.working_days == frozenset({6, 0})
    assert (calendar.opens, calendar.closes) == (time(8, 30), time(0))
    assert calendar.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 31)})
    assert policy.rule("speed_to_lead").settings.due == timedelta(hours=2, minutes=30)
    assert policy.rule("speed_to_lead").scope == Scope()
    assert policy.rule("sales_acceptance").settings.business_days == 3
    attempts = policy.rule("contact_attempts")
    assert attempts.settings_for(None, "enterprise", None, None).required_attempts == 4
    assert attempts.settings.decide_reasons == frozenset({"no_response", "bounced"})
    assert policy.rule("closed_loop_feedback").settings.due == timedelta(weeks=4)
    weekly = policy.rule("marketing_weekly_volume").settings
    assert (weekly.target, weekly.min_fit_share, weekly.fit) == (10, 0.75, "poor")
    assert policy.rule("rep_monthly_volume").settings.target == 5


def test_overrides_apply_in_order_later_ones_win():
    policy = parse_policy("""
[slas.sales_acceptance]
business_days = 2
[[slas.sales_acceptance.overrides]]
when = { team = ["desk-a", "desk-b"] }
business_days = 1
[[slas.sales_acceptance.overrides]]
when = { team = "desk-b", segment = "enterprise" }
business_days = 0
""")
    rule = policy.rule("sales_acceptance")
    assert rule.settings_for(None, "smb", "desk-c", None).business_days == 2
    assert rule.settings_for(None, "smb", "desk-a", None).business_days == 1
    assert rule.settings_for(None, "smb", "desk-b", None).business_days == 1
    assert rule.settings_for(None, "enterprise", "desk-b", None).business_days == 0


def test_team_calendar_and_sla_calendar():
    policy = parse_policy("""
[calendars.ny]
timezone = "America/New_York"
[teams.us-east]
calendar = "ny"
[slas.sales_acceptance]
[slas.closed_loop_feedback]
calendar = "default"
""")
    sales = policy.rule("sales_acceptance").settings
    assert policy.calendar_for(sales, "us-east").timezone == "America/New_York"
    assert policy.calendar_for(sales, "emea").timezone == "Europe/Berlin"
    assert policy.calendar_for(sales, None).timezone == "Europe/Berlin"
    pinned = policy.rule("closed_loop_feedback").settings
    assert policy.calendar_for(pinned, "us-east").timezone == "Europe/Berlin"


def test_an_sla_may_be_named_freely_with_a_kind():
    policy = parse_policy('[slas.enterprise_speed]\nkind = "speed_to_lead"\ndue = "15m"\nscope = { segment = "enterprise" }\n')
    rule = policy.rule("enterprise_speed")
    assert rule.kind == "speed_to_lead" and rule.settings.due == timedelta(minutes=15)


@pytest.mark.parametrize("path", sorted((REPO / "deploy/policy").glob("*.toml")), ids=lambda p: p.name)
def test_example_policies_load(path):
    assert load_policy(path).rules


# --- validation errors name the field and the line --------------------------------------

def test_bad_duration_names_field_and_line():
    error = error_of('description = "x"\n\n[slas.speed_to_lead]\ndue = "soon"\n')
    assert str(error) == 'p.toml:4: slas.speed_to_lead.due: expected a duration like "1h", got "soon"'
    assert (error.field, error.line) == ("slas.speed_to_lead.due", 4)


def test_unknown_key_is_an_error():
    error = error_of("[slas.sales_acceptance]\nbusiness_days = 2\nbusines_days = 3\n")
    assert error.field == "slas.sales_acceptance.busines_days" and error.line == 3
    assert "unknown key" in error.reason


def test_unknown_top_level_key_is_an_error():
    assert error_of("[sla.speed_to_lead]\n").field == "sla"


def test_unknown_scope_key_is_an_error():
    error = error_of('[slas.speed_to_lead]\nscope = { chanel = "website" }\n')
    assert error.field == "slas.speed_to_lead.scope.chanel" and error.line == 2


def test_toml_syntax_error_names_the_line():
    error = error_of("[slas.speed_to_lead]\ndue = 1h\n")
    assert error.line == 2 and "not valid TOML" in error.reason


def test_errors_inside_override_tables_name_the_entry():
    error = error_of("""[slas.contact_attempts]
[[slas.contact_attempts.overrides]]
when = { segment = "a" }
required_attempts = 3
[[slas.contact_attempts.overrides]]
when = { segment = "b" }
required_attempts = -1
""")
    assert (error.field, error.line) == ("slas.contact_attempts.overrides[1].required_attempts", 7)


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ('[slas.speed_to_lead]\nkind = "fast"\n', "slas.speed_to_lead.kind", "unknown SLA kind"),
        ("[slas.my_sla]\n", "slas.my_sla", "unknown SLA kind"),
        ("[slas.speed_to_lead]\nbusiness_time = 1\n", "slas.speed_to_lead.business_time", "true or false"),
        ("[slas.rep_monthly_volume]\ntarget = 1.5\n", "slas.rep_monthly_volume.target", "whole number"),
        ("[slas.marketing_weekly_volume]\nmin_fit_share = 2\n", "slas.marketing_weekly_volume.min_fit_share", "0 to 1"),
        ("[slas.sales_acceptance]\ndue = \"1h\"\n", "slas.sales_acceptance.due", "unknown key"),
        ('[calendars.default]\ntimezone = "Mars/Olympus"\n', "calendars.default.timezone", "unknown time zone"),
        ('[calendars.default]\nworking_days = ["mon", "funday"]\n', "calendars.default.working_days[1]", "mon, tue"),
        ('[calendars.default]\nopens = "9am"\n', "calendars.default.opens", "time of day"),
        ('[calendars.default]\nopens = "18:00"\n', "calendars.default.closes", "after opens"),
        ('[calendars.default]\nholidays = ["25.12.2026"]\n', "calendars.default.holidays[0]", "a date"),
        ('[teams.us]\ncalendar = "ny"\n', "teams.us.calendar", "no calendar named 'ny'"),
        ('[slas.sales_acceptance]\ncalendar = "ny"\n', "slas.sales_acceptance.calendar", "no calendar named"),
        ("[slas.sales_acceptance]\n[[slas.sales_acceptance.overrides]]\nbusiness_days = 1\n",
         "slas.sales_acceptance.overrides[0].when", "is required"),
        ("[slas.marketing_weekly_volume]\n[[slas.marketing_weekly_volume.overrides]]\nwhen = { segment = \"x\" }\n",
         "slas.marketing_weekly_volume.overrides", "has no overrides"),
        ("[slas.rep_monthly_volume]\n[[slas.rep_monthly_volume.overrides]]\nwhen = { segment = \"x\" }\n",
         "slas.rep_monthly_volume.overrides[0].when.segment", "unknown key"),
        ("[slas.speed_to_lead]\nscope = { channel = [] }\n", "slas.speed_to_lead.scope.channel", "list of strings"),
    ],
)
def test_validation_errors(text, field, words):
    error = error_of(text)
    assert error.field == field
    assert words in error.reason
    assert error.line is not None


def test_a_broken_file_raises_and_never_gives_a_partial_policy(tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text('[slas.speed_to_lead]\ndue = "2h"\n[slas.rep_monthly_volume]\ntarget = "lots"\n')
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value).startswith(f"{path}:4: slas.rep_monthly_volume.target")


def test_missing_file_is_a_policy_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "nope.toml")


# --- Policy.source --------------------------------------------------------------------------

def test_source_names_where_the_policy_came_from(tmp_path):
    assert load_policy().source == BUILTIN_SOURCE == "built-in policy"
    assert parse_policy("", "team.toml").source == "team.toml"
    assert parse_policy("").source == "<policy>"
    path = tmp_path / "policy.toml"
    path.write_text(DEFAULT_TOML, encoding="utf-8")
    loaded = load_policy(path)
    assert loaded.source == str(path)
    assert loaded.version == load_policy().version  # where it came from is not part of the version
