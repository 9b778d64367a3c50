"""Callers for tests that read data back through the store's one access path."""

from storage.roles import Caller, Role

#: An investigator with a case number: what the store requires to open reads.
INVESTIGATOR = Caller("test:investigator", Role.INVESTIGATOR, "case T-0001 (test)")
