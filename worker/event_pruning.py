"""The reconciler's pruning of old events: a batch each pass while there is work, then a rest."""

import logging
import time

from app.core.config import Settings
from app.jobs.lifecycle import prune_events

logger = logging.getLogger(__name__)

# Finding that nothing is left reads every ended job (no index serves "ended long ago and still has
# events"), so after such a pass the next look waits this long.
IDLE_SECONDS = 3600.0


class EventPruning:
    """Deletes one batch of old events per call while some are left; after a call that found none, rests."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self.idle_seconds = idle_seconds
        self.next_at = 0.0

    def run(self, settings: Settings) -> int:
        """One batch (`prune_events`) when due; returns the events deleted."""
        if settings.events_retention_days is None or time.monotonic() < self.next_at:
            return 0
        pruned = prune_events(settings=settings)
        if pruned:
            days = settings.events_retention_days
            logger.info("deleted %d event(s) of jobs that ended over %s days ago", pruned, days)
        else:
            self.next_at = time.monotonic() + self.idle_seconds
        return pruned


# One per worker process, beside its reconciler thread.
event_pruning = EventPruning()
