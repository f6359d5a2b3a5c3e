"""Energy and carbon per call, estimated with a cited method (docs/energy.md).

Owns: ``estimator`` (the method), ``reference`` (shipped model sizes and grid intensities, ``data/`` with their
sources) and ``config`` (the user's override file, ``LLMOTEL_ENERGY_CONFIG``).
May import: ``llmotel.record`` and the standard library; never OpenTelemetry, a provider module or another room.
"""
