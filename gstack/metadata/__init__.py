"""The GCE metadata server (``http://metadata.google.internal/computeMetadata/v1/``): what a guest
reads about itself and its project, and where it gets its service account's tokens.

- :mod:`.app`: the WSGI application and Google's rules (headers, errors, which instance asks);
- :mod:`.tree`: an instance's ``computeMetadata/v1`` tree;
- :mod:`.render`: directory listings, ``recursive``, ``alt`` and ETags;
- :mod:`.waits`: ``wait_for_change`` hanging GETs;
- :mod:`.accounts`: access and ID tokens minted by gstack's OAuth server;
- :mod:`.cli`: ``gstack metadata``, one instance's server on 127.0.0.1 (laptop mode).
"""

from gstack.metadata.app import InstanceRef, Locator, MetadataServer

__all__ = ["InstanceRef", "Locator", "MetadataServer"]
