"""Domain types: plain Python, no framework or engine imports."""
