"""The only place that creates spans and records metrics; it never knows which provider a call went to.

Owns: ``spans`` (the call span and its phase children, attributes from the call's outcome), ``finished_spans``
(the direct path for already-finished children), ``metrics`` (the SDK instruments, descriptors from the registry).
May import: ``record``, ``config``, ``_semconv``, the feature rooms (``phases``, ``energy``, ``signals``) and
OpenTelemetry; never a provider module or ``instrument``.
"""
