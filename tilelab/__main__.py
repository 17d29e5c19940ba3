"""``python -m tilelab`` is the ``tilelab`` command."""

from tilelab.cli import main

main()
