"""Moved to ``insitu.manifest`` (the core package); this name stays for code not yet moved."""
from insitu.manifest import *  # noqa: F401,F403
from insitu.manifest import FORMAT, build_manifest, canonical_json, leaf, merkle_proof, merkle_root  # noqa: F401
from insitu.manifest import study_digest, verify_proof  # noqa: F401
