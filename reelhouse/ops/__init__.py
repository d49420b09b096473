"""Running the project's local services (Redis, the API, ...) without systemd or containers."""
from reelhouse.ops.service import Service, ServiceError
from reelhouse.ops.services import SERVICES, down, status, up

__all__ = ["SERVICES", "Service", "ServiceError", "down", "status", "up"]
