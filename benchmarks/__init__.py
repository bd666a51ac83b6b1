"""digitnet against PyTorch CPU and scikit-learn, side by side: ``python -m benchmarks``.

Everything runs in one process (peak memory in a child process), writes
``results.json`` and ``results.md`` (a table of ratios) to ``--out``, and
records the machine, library versions and BLAS threads with the numbers.
See ``python -m benchmarks --help`` and ``benchmarks/README.md``.
"""
