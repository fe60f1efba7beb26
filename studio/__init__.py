"""Fine-Tuning Data Studio core: the record schema, readers and writers, workspaces and run manifests.

Everything else (curate, synth, review_app, training) builds on this package; it imports none of them.
"""

__version__ = "0.1.0"
