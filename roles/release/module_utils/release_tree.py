"""Shared by the release role's modules: an app's releases and links as they are on disk."""

import os


def link_target(path):
    """The version a release link names (its target's last part); '' when there is none."""
    try:
        return os.path.basename(os.readlink(path).rstrip("/"))
    except OSError:
        return ""


def releases(directory, marker):
    """(complete, unfinished): the release directories, by whether their marker exists."""
    complete, unfinished = [], []
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return [], []
    for name in names:
        path = os.path.join(directory, name)
        if name.startswith(".") or not os.path.isdir(path) or os.path.islink(path):
            continue
        (complete if os.path.isfile(os.path.join(path, marker)) else unfinished).append(name)
    return complete, unfinished


def append_line(path, line):
    """Append one line to the deploy log (created root-owned, 0644), in one write."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line.rstrip("\n") + "\n").encode("utf-8"))
    finally:
        os.close(fd)
