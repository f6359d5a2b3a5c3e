"""How a call is observed: patching, the call lifecycle, stream and raw-response hooks. No span logic.

Owns: ``wrapping`` (the provider plug-in contract: ``Provider``, ``Endpoint``, ``LLMInstrumentor``, the wrappers),
``call`` (one in-flight call, finished exactly once), ``capture`` (timestamps on the hot path) and ``streams``
(what the app gets back in place of a stream or raw response).
May import: ``record``, ``config``, ``signals``, ``phases``, ``energy``, ``telemetry``; never a provider module
(providers import this package, not the other way round).
"""
