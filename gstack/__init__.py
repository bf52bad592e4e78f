"""gstack: the GCE v1 REST API, its OAuth2 server and wire conventions, over the ``core``."""

__version__ = "0.1.0"
