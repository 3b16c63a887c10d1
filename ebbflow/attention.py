"""Which containers a decision reads, for inputs that read some less often than others.

The containers input backs off on a container whose stats do not change (cAdvisor's
dynamic housekeeping), but never on one a policy reads: the service catalog answers that
(`ServiceCatalog.reads`), once the app has built it. Inputs hold this object from the
plugin context and ask it, so no input needs the catalog itself.
"""

from __future__ import annotations

from collections.abc import Callable


class Attention:
    def __init__(self) -> None:
        self._reads: Callable[[str], bool] | None = None

    def attach(self, reads: Callable[[str], bool]) -> None:
        self._reads = reads

    def closely(self, container_id: str) -> bool:
        """True while a policy reads this container's series (every cycle, then)."""
        return self._reads is not None and self._reads(container_id)
