"""registry: the model registry of record and how a model gets in. May import: core, data, training,
evaluation, tracking.

store (index + packages on disk, atomic, locked), index (pure stage transitions), events (the append-only,
checksummed log every write goes to first), recovery (index.json as a cache of the log and the version folders,
rebuilt when lost or stale), package (the package artifact: file names, build, verify, signing), checkup
(`registry verify`), record (registration.json and gate.json), gate (the pure registration
decision), champion (challenger vs production on frozen rows), lineage (where a version came from), gto (the
GTO git-tag mirror), reproduce (rebuild a version from its lineage), cli (`python -m tabml.registry`),
show_text (`registry show` for a person).
"""
