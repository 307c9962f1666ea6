"""Custom guard hooks: the operator's own HTTP endpoint judges an exchange's texts.

``config`` compiles the policy's hook list, ``contract`` is the versioned JSON both sides speak,
``streams`` collects a held stream's answer texts for the hook. The guard is proxy/guards/hook.py.
"""
