"""The ``farm`` command line: one module per command group, each parsing its arguments,
calling one library function and printing the result. ``main(argv)`` returns the exit
code and is what tests call."""

from farm.cli._main import entry_point, main

__all__ = ["entry_point", "main"]
