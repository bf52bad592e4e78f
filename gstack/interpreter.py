"""How a long-running gstack process (``gstack serve``, ``gstack worker``, a WSGI server's worker)
sets up the interpreter once start-up is done."""

from __future__ import annotations

import gc


def settle() -> None:
    """Set aside what start-up built (the discovery document, schemas, templates: ~180,000 objects)
    from the cyclic garbage collector, which would otherwise walk it on every full collection of
    a long-running process."""
    gc.collect()
    gc.freeze()
