"""Settings → Activity: who did what in the workspace."""

from __future__ import annotations

from billing.models import Activity


def activity_page(*, workspace_id: int, limit: int = 100) -> list[Activity]:
    """The workspace's latest activities, newest first, each with its actor loaded."""
    return list(Activity.objects.filter(workspace_id=workspace_id).select_related("actor").order_by("-id")[:limit])
