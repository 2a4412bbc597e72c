"""User-study kit for the reconstruction attack (appendix C of the paper).

``build`` picks test images that the RN18 upper bound classifies correctly (balanced over the
private classes) and writes each method's reconstruction of them under opaque ids; ``app``
serves the questionnaire (FastAPI, offline, answers stored in SQLite by ``store``); ``results``
scores the answers per method. Import the submodules directly: this package imports nothing
heavy (no torch, no FastAPI) so that :mod:`noisyarl.runners.experiment` can use ``decoder``.
"""
