"""insitu core: what the hub, the dataset service and the tracer share.

A small package that every component imports and that imports none of them
(``tests/core/test_architecture.py`` fails on any import of ``hub``,
``dataset_service`` or ``tracer`` from here, and on any import cycle):

``names``        role, project, service and scope names
``clock``        ``utcnow`` (timezone-aware UTC)
``merkle``       the Merkle tree rules (leaves 0x00, nodes 0x01, odd node carried up)
``manifest``     the dataset manifest's hashing rules (file, study, Merkle root)
``trace``        the trace and its canonical encoding (leaf hash)
``trace_client`` the tracer's client and the services' one tracing path
``identity``     callers identified by JupyterHub's ``HubOAuth``, with scope checks
``hubapi``       the JupyterHub REST client (users, groups, servers) called with a service's token
``httpapi``      what every API answers alike (UTC times, bounded ids, 422 shape, body limit)
``pages``        what every web page answers alike (security headers, login redirect)
``apidocs``      the OpenAPI spec and the docs page served from local assets
``probes``       ``/livez`` and ``/readyz`` without credentials
``navigation``   the one navigation bar of the hub home and the services' pages
"""
