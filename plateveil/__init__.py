"""plateveil: hides licence plates in car-marketplace photos.

Packages:
    plateveil     shared, framework-free pieces (job schema, geometry, imaging, concealment, storage, CLI)
    producer      the HTTP upload service and its client (never imports workers or mxnet)
    workers       the Celery app and the photo pipeline
    model_store   plate models: data, synthesis, nets, training, evaluation, export, registry
"""

__version__ = "0.1.0"
