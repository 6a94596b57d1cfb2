"""Plate models. The modules here serve: what a worker needs to fetch, check and run a model bundle,
with no deep-learning framework imported at import time.

* ``bundle`` - the bundle format: its nets, the typed ``model.json`` schema, versions, the shipped bundle
* ``errors`` - the ``ModelError`` family (load, config, smoke check, registry, integrity)
* ``runtime`` - pre/post-processing around the two graphs; ``load_model``
* ``backends/`` - one module per inference backend (onnx, mxnet), each declaring the bundle files it loads
* ``registry``, ``registry_settings``, ``cache`` - the versioned registry (in S3 or a local directory, through
  ``plateveil.storage``) and its verified local copies
* ``golden`` - the smoke check every model passes before a worker serves it
* ``commands`` - ``plateveil models list|show|unalias|workers``
* ``weights/`` - the shipped bundle

Making and judging models is ``model_training``; nothing here imports it.
"""
