"""Filters for a version given as input (deploy.yml's app_version, the release role's
release_version, the extra variables of an AWX launch).

YAML and JSON read an unquoted 1.10 as the number 1.1: a check made after `| string`
would see "1.1" and deploy the wrong release. These filters look at the value as it
arrived.
"""

from numbers import Number


def version_type_error(value, name):
    """'' when `value` is a string (whether it is a valid version is the caller's next
    check); otherwise the sentence that tells the user what happened and how to fix it."""
    if isinstance(value, str):
        return ""
    if isinstance(value, Number) and not isinstance(value, bool):
        number = float(value) if isinstance(value, float) else int(value)
        return (f"{name} must be a string, but it was read as the number {number}: YAML and JSON read "
                f"an unquoted version as a number (1.10 becomes 1.1). Quote it: -e {name}=1.10 on the "
                f"command line, {name}: \"1.10\" in YAML.")
    if isinstance(value, bool):
        read_as = f"the boolean {str(value).lower()}"
    elif value is None:
        read_as = "null (an empty value)"
    elif isinstance(value, (list, tuple)):
        read_as = "a list"
    elif isinstance(value, dict):
        read_as = "a mapping"
    else:
        read_as = f"a {type(value).__name__}"
    return (f"{name} must be a string, but it was read as {read_as}. Give one version as a string: "
            f"-e {name}=1.2.3 on the command line, {name}: \"1.2.3\" in YAML.")


class FilterModule:
    """webdeploy's filters for versions given as input."""

    def filters(self):
        return {"version_type_error": version_type_error}
