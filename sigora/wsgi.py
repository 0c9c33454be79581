"""WSGI entry point (`sigora.wsgi:application`, as stack/servers.py serves it): Django's own handler, the same
``MIDDLEWARE`` the tests run.

The API is answered early inside that stack, by ``api.middleware.ApiFirstMiddleware``.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sigora.settings.production")

application = get_wsgi_application()
