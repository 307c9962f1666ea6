"""Converters from other gateways' configuration to aifw policies (`aifw import ...`)."""
