"""HTTP emulators of the platform's services, speaking their real APIs on loopback.

Each emulator module exposes a ``State`` (the service's data, plus its fault switches) and
``create_app(state) -> Starlette/FastAPI app``. :class:`EmulatorServer` runs any of them on an
ephemeral loopback port. Emulators import nothing from ``bot`` or ``commands``.
"""

from services.emulators.base import EmulatorServer, Faults

__all__ = ["EmulatorServer", "Faults"]
