"""Reply detection: a lead that replied has its automated sequence paused until resumed."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from billing.errors import InvalidRequest
from billing.models import LeadState, Workspace
from billing.services.charging import lead_checked, workspace_checked

logger = logging.getLogger(__name__)


def _existing_workspace(workspace: Workspace | int) -> int:
    workspace_id = workspace_checked(workspace)
    if not Workspace.objects.filter(pk=workspace_id).exists():
        raise InvalidRequest(f"There is no workspace {workspace_id}.", field="workspace")
    return workspace_id


def record_reply(workspace: Workspace | int, lead: str, *, now: datetime | None = None) -> LeadState:
    """The lead replied: refuse (and count) its sequence steps until :func:`resume_lead`."""
    workspace_id = _existing_workspace(workspace)
    now = now or timezone.now()
    state, _ = LeadState.objects.update_or_create(
        workspace_id=workspace_id,
        lead=lead_checked(lead, required=True),
        defaults={"paused": True, "replied_at": now, "resumed_at": None},
    )
    logger.info("lead replied workspace=%s lead=%s: sequence paused", workspace_id, lead)
    return state


def resume_lead(workspace: Workspace | int, lead: str, *, now: datetime | None = None) -> LeadState:
    """Let the lead's sequence steps be charged again."""
    workspace_id = _existing_workspace(workspace)
    now = now or timezone.now()
    state, _ = LeadState.objects.update_or_create(
        workspace_id=workspace_id,
        lead=lead_checked(lead, required=True),
        defaults={"paused": False, "resumed_at": now},
    )
    logger.info("lead resumed workspace=%s lead=%s", workspace_id, lead)
    return state
