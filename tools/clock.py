"""The date and time in a named time zone (IANA names, or a city such as "Jakarta")."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field

__all__ = ["CurrentTime", "CurrentTimeInput", "resolve_time_zone"]

#: Time zones of the region, suggested when a name is not found.
SEA_ZONES = (
    "Asia/Singapore",
    "Asia/Jakarta",
    "Asia/Makassar",
    "Asia/Jayapura",
    "Asia/Kuala_Lumpur",
    "Asia/Manila",
    "Asia/Bangkok",
    "Asia/Ho_Chi_Minh",
    "Asia/Phnom_Penh",
    "Asia/Vientiane",
    "Asia/Yangon",
    "Asia/Brunei",
    "Asia/Dili",
)


@functools.cache
def _by_city() -> dict[str, str]:
    return {zone.rsplit("/", 1)[-1].lower(): zone for zone in sorted(available_timezones())}


def resolve_time_zone(name: str) -> ZoneInfo:
    """An IANA time zone from its name ("Asia/Jakarta") or its city ("Jakarta", "ho chi minh")."""
    text = name.strip()
    if not text:
        raise ToolException("no time zone given: pass an IANA name such as 'Asia/Singapore'")
    candidates = [text, _by_city().get(text.replace(" ", "_").lower(), "")]
    for candidate in candidates:
        if candidate and candidate != "." and ".." not in candidate:
            try:
                return ZoneInfo(candidate)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    raise ToolException(
        f"unknown time zone {name!r}: use an IANA name, e.g. {', '.join(SEA_ZONES[:7])}"
    )


class CurrentTimeInput(BaseModel):
    """Arguments of the clock."""

    timezone: str = Field(
        default="Asia/Singapore",
        description="IANA time zone name (e.g. 'Asia/Jakarta') or a city (e.g. 'Bangkok').",
    )


class CurrentTime(BaseTool):
    """Tells the current date, weekday and time in a time zone."""

    name: str = "current_time"
    description: str = (
        "Get the current date, weekday and time in a time zone (IANA name such as "
        "'Asia/Jakarta', or a city such as 'Manila'). Use it for anything about 'today' or 'now'."
    )
    args_schema: type[BaseModel] = CurrentTimeInput
    handle_tool_error: bool = True

    def _run(self, timezone: str = "Asia/Singapore", **_: Any) -> str:
        zone = resolve_time_zone(timezone)
        now = datetime.now(zone)
        offset = now.strftime("%z")
        return (
            f"{now.strftime('%Y-%m-%d %H:%M:%S')} (UTC{offset[:3]}:{offset[3:]}, "
            f"{now.strftime('%A')}) in {zone.key}"
        )
