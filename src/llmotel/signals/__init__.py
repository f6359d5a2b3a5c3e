"""What a call says about where, who and under which limits it ran, read from headers, baggage and requests.

Owns: ``region`` (serving region and model revision), ``ratelimit`` (rate-limit headers), ``tenant`` (the tenant
in baggage), ``fingerprint`` (keyed hash of the prompt prefix). Small, table-driven parsers that never raise.
May import: ``llmotel.config``, ``llmotel._semconv``, OpenTelemetry's API (baggage) and the standard library.
"""
