"""CLI commands beyond service control; reelhouse.cli registers them."""
