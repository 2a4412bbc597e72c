"""The runners: whole jobs built from the layers below.

``experiment`` (one run: set up -> train -> attack -> report), ``compare`` (a table of defences),
``sweep`` (a σ sweep), ``executor`` (where a study's runs execute: here or as Ray tasks),
``demo`` (the README's demo) and ``runs`` (run directories: checks before writing, tasks,
loading a finished run). Import the submodules directly; this package imports
nothing itself.
"""
