"""The rules every proactive message obeys (program.yml `proactive_messages:`, read by bot/loyalty/program.py):
quiet hours in the shopper's time zone (the shop's when theirs is unknown) and a cap per shopper per 30 days."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Optional
from zoneinfo import ZoneInfo

from bot.shared.time_zones import known_time_zone

CAP_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class ProactivePolicy:
    quiet_start: Optional[time] = time(21, 0)  # both None: no quiet hours
    quiet_end: Optional[time] = time(9, 0)
    time_zone: str = "UTC"  # the shop's IANA time zone
    max_per_30_days: int = 5

    def zone(self, shopper_zone: Optional[str]) -> ZoneInfo:
        """The shopper's time zone when it is a known one, else the shop's."""
        return known_time_zone(shopper_zone) or known_time_zone(self.time_zone) or ZoneInfo("UTC")

    def quiet_until(self, now: datetime, shopper_zone: Optional[str]) -> Optional[datetime]:
        """When the quiet hours around `now` end (UTC), or None when `now` is not in them."""
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return None
        local = now.astimezone(self.zone(shopper_zone))
        clock = local.time().replace(tzinfo=None)
        start, end = self.quiet_start, self.quiet_end
        quiet = (start <= clock < end) if start < end else (clock >= start or clock < end)
        if not quiet:
            return None
        ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if ends <= local:
            ends += timedelta(days=1)
        return ends.astimezone(now.tzinfo)
