"""gunicorn settings for the Procfile's `gunicorn -c gunicorn.conf.py wsgi:app`: they live in the package
(alex/gunicorn_conf.py) so that an installed alex (`alex serve`) runs with the very same ones."""

from alex.gunicorn_conf import *  # noqa: F403 - gunicorn reads the settings and hooks from this module's names
