"""``python -m hooks.cli``: the same as the ``apshooks`` command."""

from hooks.cli import main

main(prog_name="apshooks")
