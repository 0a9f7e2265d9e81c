"""Thin layers over the library: the command line (cli.py, its commands in commands/, the output
path types its options share in params.py, the progress bar in progress.py) and the web page (web.py)."""
