"""Procedurally generated data in the real datasets' on-disk formats, so that every loader and
every test runs without downloading anything.

``faces`` writes faces with CelebA's and FairFace's attributes and layouts, ``objects`` writes
CIFAR-10-format object images, ``draw`` holds the shared drawing primitives and ``workers``
the shared worker pool that both generators draw in. Import the submodules directly.
"""
