"""Control tasks about images: the report an agent sends after each image action (signed:
labmgr.hosts.trust). The heartbeat's image list is stored by the heartbeat itself."""

from __future__ import annotations

from labmgr.hosts.trust import agent_report
from labmgr.images.services import host_images_report_record
from labplan.messages import ControlTask


@agent_report(ControlTask.IMAGES)
def images(
    *,
    host: str,
    action: object = "",
    ok: object = False,
    error: object = "",
    message: object = "",
    images: object = None,
) -> None:
    host_images_report_record(
        slug=host,
        action=str(action),
        ok=ok is True,
        error=str(error or ""),
        message=str(message or ""),
        images=images,
    )
