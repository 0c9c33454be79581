from django.contrib.admin.apps import AdminConfig


class SigoraAdminConfig(AdminConfig):
    """django.contrib.admin, with the project's site as ``admin.site`` (sigora.admin)."""

    default_site = "sigora.admin.SigoraAdminSite"
