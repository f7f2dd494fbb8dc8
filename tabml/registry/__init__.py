"""registry: the model registry of record and how a model gets in. May import: core, data, training,
evaluation, tracking.

store (index + packages on disk, atomic, locked), index (pure stage transitions), package (the package
artifact: file names, build, verify), record (registration.json and gate.json), gate (the pure registration
decision), champion (challenger vs production on frozen rows), lineage (where a version came from), gto (the
GTO git-tag mirror), reproduce (rebuild a version from its lineage), cli (`python -m tabml.registry`),
show_text (`registry show` for a person).
"""
