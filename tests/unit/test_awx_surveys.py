"""The surveys of awx/configure.yml, checked against the rules AWX applies when a survey
spec is saved (awx/api/views JobTemplateSurveySpec._validate_spec_data) and when a job is
launched with its defaults (SurveyJobTemplateMixin._survey_element_validation).

A spec AWX refuses would only show up when someone runs awx/configure.yml against a
controller; here it fails `make unit`. The broken specs at the end prove that each rule
is actually checked.
"""

import copy

import pytest
import yaml
from sandbox_support import PROJECT

# Question types and the Python type of their default (AWX's ALLOWED_TYPES).
ALLOWED_TYPES = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
TEMPLATE_MODULES = ("awx.awx.job_template", "awx.awx.workflow_job_template")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(question):
    choices = question.get("choices")
    return choices.splitlines() if isinstance(choices, str) else list(choices or [])


def _question_errors(idx, question, seen):
    """The errors of one question: AWX stops at the first, this lists them all."""
    if not isinstance(question, dict):
        return [f"question {idx} is not a mapping"]
    errors = []
    for field in ("type", "question_name", "variable", "required"):
        kind = bool if field == "required" else str
        if field not in question:
            errors.append(f"question {idx}: '{field}' is missing")
        elif not isinstance(question[field], kind):
            errors.append(f"question {idx}: '{field}' must be a {kind.__name__}")
    variable = question.get("variable")
    if variable in seen:
        errors.append(f"question {idx}: variable {variable!r} is used twice")
    seen.add(variable)
    qtype = question.get("type")
    if qtype not in ALLOWED_TYPES:
        return errors + [f"question {idx}: type {qtype!r} is not one of {', '.join(ALLOWED_TYPES)}"]
    for key in ("min", "max"):
        if question.get(key) is not None and not _is_int(question[key]):
            errors.append(f"question {idx}: '{key}' must be an integer")
    low, high = question.get("min"), question.get("max")
    if _is_int(low) and _is_int(high) and low > high:
        errors.append(f"question {idx}: min {low} is greater than max {high}")
    default = question.get("default", "")
    if default == "":
        return errors
    if not isinstance(default, ALLOWED_TYPES[qtype]) or isinstance(default, bool):
        return errors + [f"question {idx}: default {default!r} is not a {qtype} answer"]
    if qtype in ("multiplechoice", "multiselect"):
        defaults = default.splitlines() if isinstance(default, str) else list(default)
        if qtype == "multiplechoice" and len(defaults) > 1:
            errors.append(f"question {idx}: a multiplechoice question has one default")
        if any(d not in _choices(question) for d in defaults):
            errors.append(f"question {idx}: default {default!r} is not among the choices")
    # What the launch checks against a default that nobody changed.
    measure = len(default) if isinstance(default, str) else default
    if _is_int(low) and measure < low or _is_int(high) and measure > high:
        errors.append(f"question {idx}: default {default!r} is outside min {low} / max {high}")
    return errors


def survey_errors(spec):
    """Every reason AWX would refuse this survey spec (empty: accepted)."""
    if not isinstance(spec, dict):
        return ["the survey spec is not a mapping"]
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            errors.append(f"'{field}' is missing")
        elif not isinstance(spec[field], kind):
            errors.append(f"'{field}' must be a {kind.__name__}")
    questions = spec.get("spec")
    if isinstance(questions, list) and not questions:
        errors.append("'spec' has no question")
    seen = set()
    for idx, question in enumerate(questions if isinstance(questions, list) else []):
        errors += _question_errors(idx, question, seen)
        if isinstance(question, dict) and question.get("type") in ("multiplechoice", "multiselect") \
                and not _choices(question):
            errors.append(f"question {idx}: a {question['type']} question needs choices")
    return errors


def awx_templates():
    """{template name: module arguments} of every job and workflow template in awx/."""
    found = {}
    for path in sorted((PROJECT / "awx").glob("*.yml")):
        for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            for task in play.get("tasks", []):
                for module in TEMPLATE_MODULES:
                    if module in task:
                        found[task[module]["name"]] = dict(task[module], _module=module, _file=path)
    return found


TEMPLATES = awx_templates()
SURVEYED = sorted(name for name, args in TEMPLATES.items() if "survey_spec" in args)


def test_the_templates_the_issue_asks_for_are_there():
    assert {"Provision", "Release", "Deploy", "Rollback", "Deploy with smoke test"} <= set(TEMPLATES)
    assert {"Deploy", "Rollback", "Deploy with smoke test"} <= set(SURVEYED)


@pytest.mark.parametrize("name", SURVEYED)
def test_survey_is_valid_for_awx(name):
    assert survey_errors(TEMPLATES[name]["survey_spec"]) == [], name


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_survey_is_enabled_exactly_when_there_is_one(name):
    args = TEMPLATES[name]
    assert args.get("survey_enabled", False) is ("survey_spec" in args), name


@pytest.mark.parametrize("name", ["Deploy", "Deploy with smoke test"])
def test_deploy_survey_asks_for_the_version_and_the_app(name):
    questions = {q["variable"]: q for q in TEMPLATES[name]["survey_spec"]["spec"]}
    assert set(questions) == {"app_version", "app_name"}
    assert questions["app_version"]["required"] is True
    assert questions["app_name"]["required"] is False


def test_rollback_survey_version_is_optional():
    questions = {q["variable"]: q for q in TEMPLATES["Rollback"]["survey_spec"]["spec"]}
    assert questions["app_version"]["required"] is False
    assert questions["app_version"]["default"] == ""


VERSION_QUESTIONS = [(name, q) for name in SURVEYED for q in TEMPLATES[name]["survey_spec"]["spec"]
                     if q["variable"] == "app_version"]


def test_every_survey_that_deploys_asks_for_the_version():
    assert {name for name, _ in VERSION_QUESTIONS} == {"Deploy", "Rollback", "Deploy with smoke test"}


@pytest.mark.parametrize(("name", "question"), VERSION_QUESTIONS, ids=[n for n, _ in VERSION_QUESTIONS])
def test_the_version_is_asked_as_text(name, question):
    # AWX hands a text answer over as a string; an integer or float question would turn
    # 1.10 into the number 1.1, which the playbooks refuse (tests/unit/test_versions.py).
    assert question["type"] == "text", name


@pytest.mark.parametrize("name", [n for n in SURVEYED if "playbook" in TEMPLATES[n]])
def test_survey_variables_are_read_by_the_playbook(name):
    # The entry point or the playbook it imports from playbooks/.
    text = "".join(p.read_text(encoding="utf-8")
                   for p in [PROJECT / TEMPLATES[name]["playbook"], *(PROJECT / "playbooks").glob("*.yml")])
    for question in TEMPLATES[name]["survey_spec"]["spec"]:
        assert question["variable"] in text, f"{name}: no playbook reads {question['variable']}"


# --- the validator catches each rule ------------------------------------------------

GOOD = {
    "name": "Good",
    "description": "A survey AWX accepts.",
    "spec": [
        {"question_name": "Version", "variable": "app_version", "type": "text", "required": True,
         "min": 1, "max": 64, "default": ""},
        {"question_name": "Count", "variable": "count", "type": "integer", "required": False,
         "min": 1, "max": 5, "default": 2},
        {"question_name": "Ratio", "variable": "ratio", "type": "float", "required": False, "default": 0.5},
        {"question_name": "Colour", "variable": "colour", "type": "multiplechoice", "required": False,
         "choices": ["red", "blue"], "default": "red"},
        {"question_name": "Tags", "variable": "tags", "type": "multiselect", "required": False,
         "choices": "a\nb\nc", "default": "a\nc"},
    ],
}


def broken(change):
    spec = copy.deepcopy(GOOD)
    change(spec)
    return spec


BROKEN = {
    "no name": (lambda s: s.pop("name"), "'name' is missing"),
    "no description": (lambda s: s.pop("description"), "'description' is missing"),
    "no spec": (lambda s: s.pop("spec"), "'spec' is missing"),
    "spec not a list": (lambda s: s.update(spec={"a": 1}), "'spec' must be a list"),
    "empty spec": (lambda s: s.update(spec=[]), "'spec' has no question"),
    "no variable": (lambda s: s["spec"][0].pop("variable"), "'variable' is missing"),
    "unknown type": (lambda s: s["spec"][0].update(type="string"), "type 'string' is not one of"),
    "duplicate variable": (lambda s: s["spec"][1].update(variable="app_version"), "used twice"),
    "required not a boolean": (lambda s: s["spec"][0].update(required="yes"), "'required' must be a bool"),
    "min not an integer": (lambda s: s["spec"][1].update(min="1"), "'min' must be an integer"),
    "max a float": (lambda s: s["spec"][0].update(max=64.0), "'max' must be an integer"),
    "min above max": (lambda s: s["spec"][1].update(min=9), "min 9 is greater than max 5"),
    "integer default a string": (lambda s: s["spec"][1].update(default="2"), "is not a integer answer"),
    "text default a number": (lambda s: s["spec"][0].update(default=1), "is not a text answer"),
    "default out of range": (lambda s: s["spec"][1].update(default=7), "outside min"),
    "default not a choice": (lambda s: s["spec"][3].update(default="green"), "not among the choices"),
    "two defaults for one choice": (lambda s: s["spec"][3].update(default="red\nblue"), "has one default"),
    "no choices": (lambda s: s["spec"][4].pop("choices"), "needs choices"),
}


def test_the_good_example_passes():
    assert survey_errors(GOOD) == []


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_is_checked(case):
    change, expected = BROKEN[case]
    errors = survey_errors(broken(change))
    assert any(expected in e for e in errors), f"{case}: {errors}"

