"""Build webxample's release wheels: build-releases OUTDIR [VERSION ...].

A variant is the source tree with variants/<version>/ copied over it and <version> set
in pyproject.toml. All requested variants are built with the `build` frontend (as
`python -m build --wheel` does) in one isolated environment, so the pinned backend from
build-system.requires is installed once per run, not once per wheel. Prints the path of
each wheel on stdout; progress goes to stderr.
"""

import argparse
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

import build
import build.env
import pyproject_hooks
from packaging.version import Version

HERE = Path(__file__).resolve().parent
VARIANTS = HERE / "variants"
# What a wheel is built from: the tests, the variants and this script stay out.
SOURCES = ("pyproject.toml", "README.md", "src")
# Build leftovers of a development checkout (editable install, local builds).
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
# Each variant describes itself in this file; it is not part of the tree.
VARIANT_DOC = "VARIANT.md"

log = logging.getLogger("build-releases")


def available_versions():
    return sorted((p.name for p in VARIANTS.iterdir() if p.is_dir()), key=Version)


def prepare_tree(version, workdir):
    """Copy the sources to workdir/<version>, apply the overlay, set the version."""
    tree = workdir / version
    tree.mkdir()
    for name in SOURCES:
        source = HERE / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=IGNORE)
        else:
            shutil.copy2(source, tree / name)
    shutil.copytree(VARIANTS / version, tree, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(VARIANT_DOC, "__pycache__", "*.pyc"))
    pyproject = tree / "pyproject.toml"
    text, count = re.subn(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text(encoding="utf-8"))
    if count != 1:
        sys.exit(f"build-releases: expected one `version = \"...\"` line in {pyproject}, found {count}")
    pyproject.write_text(text, encoding="utf-8")
    return tree


def build_wheels(trees, outdir):
    """Build one wheel per tree in a shared isolated environment; return their paths."""
    wheels = []
    with build.env.DefaultIsolatedEnv() as env:
        builders = [build.ProjectBuilder.from_isolated_env(env, tree, runner=pyproject_hooks.quiet_subprocess_runner)
                    for tree in trees]
        env.install(set().union(*(b.build_system_requires for b in builders)))
        env.install(set().union(*(b.get_requires_for_build("wheel") for b in builders)))
        for tree, builder in zip(trees, builders):
            log.info("variant %s", tree.name)
            wheels.append(Path(builder.build("wheel", outdir)))
    return wheels


def main(argv=None):
    versions = available_versions()
    parser = argparse.ArgumentParser(prog="build-releases", description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path, help="where the wheels go (created if missing)")
    parser.add_argument("versions", nargs="*", metavar="VERSION",
                        help=f"variants to build (default: all of {', '.join(versions)})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.versions) - set(versions))
    if unknown:
        parser.error(f"no variant for {', '.join(unknown)} (variants/ has {', '.join(versions)})")

    logging.basicConfig(level=logging.INFO, format="build-releases: %(message)s", stream=sys.stderr)
    args.outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="webxample-build-") as workdir:
        trees = [prepare_tree(v, Path(workdir)) for v in (args.versions or versions)]
        try:
            wheels = build_wheels(trees, args.outdir.resolve())
        except build.BuildBackendException as exc:
            # The backend's own output says what went wrong.
            output = getattr(exc.exception, "output", None)
            if output:
                sys.stderr.write(output.decode(errors="replace"))
            sys.exit(f"build-releases: {exc}")
        except (build.BuildException, build.FailedProcessError) as exc:
            sys.exit(f"build-releases: {exc}")
    for wheel in wheels:
        print(wheel)


if __name__ == "__main__":
    main()
