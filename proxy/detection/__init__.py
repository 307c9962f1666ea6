"""Prompt-injection and jailbreak detection: transforms, rules as data, model, scoring."""
