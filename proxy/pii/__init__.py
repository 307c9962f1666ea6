"""PII and secret detection, masking operators, the per-exchange vault and stream hold-back.

The guard in ``proxy.guards.pii`` wires these pieces into the exchange pipeline; everything here
is plain Python that a test can drive without a proxy.
"""
