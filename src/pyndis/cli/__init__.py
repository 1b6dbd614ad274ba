"""The ``pyndis`` command line."""
