"""Running the project's local services (Redis, the API, ...) without systemd or containers.

The supervisor is ``reelhouse.ops.services`` (``up``, ``down``, ``status``); import it and the
other modules by name. This package module imports nothing: its modules import one another
(``from reelhouse.ops import processes``), and a package that re-exported the supervisor would
import them all back, a cycle.
"""
