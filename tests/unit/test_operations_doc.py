"""docs/operations.md quotes every failure message of the release role and the playbooks.

The messages are the `msg` of ansible.builtin.fail and the `fail_msg` of
ansible.builtin.assert tasks, read with PyYAML. A message often names a variable that a
`vars:` or `set_fact` of the files read defines (`msg: "{{ __release_failure }}"`): its
texts count as messages too. Each message is reduced to its fixed text: `{% ... %}`
separates the branches of an if (each is checked on its own) and every `{{ ... }}`
becomes a gap. The runbook must hold that text in order, with one or more
`<placeholders>` in each gap; whitespace is ignored. A quoted string of three words or
more inside an expression ('the index did not answer') must appear as it is.

A new failure message that the runbook does not quote fails its own test case, named by
file and task.
"""

import re
from pathlib import Path

import pytest
import yaml
from sandbox_support import PROJECT

RUNBOOK = PROJECT / "docs/operations.md"
SOURCES = ("roles/release/tasks/*.yml", "playbooks/*.yml")
MESSAGE_KEYS = {"ansible.builtin.fail": "msg", "ansible.builtin.assert": "fail_msg"}

EXPRESSION = re.compile(r"{{.*?}}", re.S)
STATEMENT = re.compile(r"{%.*?%}", re.S)
PLACEHOLDERS = r"(?:<[^<>]*>)+"


def tasks_in(items):
    """Every task and block of a task file or playbook, nested ones included."""
    for item in items or []:
        if not isinstance(item, dict):
            continue
        yield item
        for key in ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            yield from tasks_in(item.get(key))


def load_tasks():
    """(file, task) for every task of the SOURCES."""
    for pattern in SOURCES:
        for path in sorted(PROJECT.glob(pattern)):
            for task in tasks_in(yaml.safe_load(path.read_text(encoding="utf-8"))):
                yield path.relative_to(PROJECT).as_posix(), task


def squash(text):
    return re.sub(r"\s+", "", text)


def words(text):
    """The words of a text: runs of non-blanks with a letter (a regex or a path is one)."""
    return [word for word in text.split() if re.search("[A-Za-z]", word)]


def definitions(tasks):
    """{variable: [texts]} of the vars: and set_fact of the tasks and blocks."""
    found = {}
    for _, task in tasks:
        for source in (task.get("vars"), task.get("ansible.builtin.set_fact")):
            for name, value in (source or {}).items():
                if isinstance(value, str):
                    found.setdefault(name, []).append(value)
    return found


def expand(text, defined, via="", seen=()):
    """(via, text): the text, then the texts of the variables its expressions name, recursively."""
    yield via, text
    for expression in EXPRESSION.findall(text) + STATEMENT.findall(text):
        for name in re.findall(r"[A-Za-z_]\w*", expression):
            if name in defined and name not in seen:
                seen = (*seen, name)
                for value in defined[name]:
                    yield from expand(value, defined, f" (via {name})", seen)


def patterns(text):
    """(readable text, regex over the squashed runbook) for each fixed text in the message."""
    for branch in STATEMENT.split(text):
        if len(words(EXPRESSION.sub(" ", branch))) < 2:
            continue  # nothing but expressions and punctuation: nothing to quote
        # \0 marks a gap; expressions side by side make one gap.
        skeleton = re.sub("\0+", "\0", squash(EXPRESSION.sub("\0", branch)))
        regex = PLACEHOLDERS.join(re.escape(piece) for piece in skeleton.split("\0"))
        yield " ".join(EXPRESSION.sub("<...>", branch).split()), regex
    for expression in EXPRESSION.findall(text):
        for literal in re.findall(r"'([^']*)'|\"([^\"]*)\"", expression):
            literal = "".join(literal)
            if len(words(literal)) >= 3:
                yield " ".join(literal.split()), re.escape(squash(literal))


def failure_messages():
    """pytest params: one per distinct fixed text, named by the file and task it came from."""
    tasks = list(load_tasks())
    defined = definitions(tasks)
    params, seen = [], set()
    for path, task in tasks:
        for module, key in MESSAGE_KEYS.items():
            message = (task.get(module) or {}).get(key)
            if not isinstance(message, str):
                continue
            for via, text in expand(message, defined):
                for readable, regex in patterns(text):
                    if regex not in seen:
                        seen.add(regex)
                        origin = f"{path}: {task.get('name', '?')}{via}"
                        params.append(pytest.param(origin, readable, regex, id=f"{origin}: {readable[:40]}"))
    return params


MESSAGES = failure_messages()


def test_the_messages_are_found():
    # A parser that found nothing would pass every check below: guard against that.
    origins = {param.values[0].split(":")[0] for param in MESSAGES}
    assert len(MESSAGES) >= 20, [param.values[1] for param in MESSAGES]
    assert any(o.startswith("roles/release/tasks/") for o in origins)
    assert any(o.startswith("playbooks/") for o in origins)


@pytest.mark.parametrize(("origin", "readable", "regex"), MESSAGES)
def test_the_runbook_quotes_the_failure_message(origin, readable, regex):
    quoted = re.search(regex, squash(RUNBOOK.read_text(encoding="utf-8"))) is not None
    assert quoted, (
        f"{RUNBOOK} does not quote the failure message of {origin}: "
        f"{readable!r} (write it with a <placeholder> for each <...>)")
