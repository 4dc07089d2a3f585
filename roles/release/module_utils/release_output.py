"""Shared by the release role's modules: what a failed process said, for the operator's message."""


def last_lines(path, count=5):
    """The last non-empty lines of a file, ' / '-joined; '' when it is missing or empty."""
    try:
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            stream.seek(max(0, stream.tell() - 16384))
            text = stream.read().decode("utf-8", "replace")
    except (OSError, TypeError):
        return ""
    return " / ".join([line.strip() for line in text.splitlines() if line.strip()][-count:])
