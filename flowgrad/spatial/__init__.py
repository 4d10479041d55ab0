"""Spatial sound: microphone geometry, direction of arrival, and its fusion with the picture.

* :mod:`.geometry`: microphones in camera coordinates, ``--mics`` files and presets, the pinhole model.
* :mod:`.gcc`: GCC-PHAT delay of a pair.
* :mod:`.srp`: SRP-PHAT of an array over directions.
* :mod:`.doa`: :class:`~.doa.DirectionFinder`, a likelihood over image columns (or pixels).
* :mod:`.fusion`: a map times that likelihood; the likelihood's sharpness.
* :mod:`.with_doa`: :class:`~.with_doa.WithDoa`, the "+doa" of a model spec (any engine's maps fused).
"""
