"""WSGI entry point for gunicorn and other servers: ``gunicorn 'gstack.wsgi:app'``.

Settings come from the environment (``GSTACK_*``), as for ``gstack serve``.
"""

from gstack.app import create_app
from gstack.interpreter import settle

app = create_app()
settle()
