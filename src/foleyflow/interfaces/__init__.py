"""Thin layers over the library: the command line (cli.py) and, later, a web UI."""
