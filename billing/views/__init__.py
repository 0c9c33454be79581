"""The settings pages, one module per page; ``access`` holds what they share: ``workspace_view``."""
