"""insitu core: what the hub, the dataset service and the tracer share.

A small package that every component imports and that imports none of them
(``tests/test_architecture.py`` fails on any import of ``hub``,
``dataset_service`` or ``tracer`` from here, and on any import cycle):

``names``        role, project, service and scope names
``clock``        ``utcnow`` (timezone-aware UTC)
``merkle``       the Merkle tree rules (leaves 0x00, nodes 0x01, odd node carried up)
``manifest``     the dataset manifest's hashing rules (file, study, Merkle root)
``trace``        the trace and its canonical encoding (leaf hash)
``trace_client`` the tracer's client and the services' one tracing path
``identity``     callers identified by JupyterHub's ``HubOAuth``, with scope checks
"""
