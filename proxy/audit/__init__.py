"""Tamper-evident audit log: records, hash chain, signed checkpoints, writer and review tools."""
