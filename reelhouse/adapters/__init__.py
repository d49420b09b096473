"""Adapters: one module per engine behind the interfaces in reelhouse.ports."""
