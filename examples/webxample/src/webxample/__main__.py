"""`python -m webxample ...` is the same as the `webxample` command."""

from webxample.manage import main

main()
