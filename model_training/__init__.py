"""Everything that makes or judges a model: data readers, synthesis, augmentation, nets, training,
recipe, mining, tuning, review, evaluation, export, build, the release CLI and the model card.

Nothing outside this package (``workers/``, ``producer/``, the serving modules of ``model_store``)
imports it; it may import the serving modules and ``plateveil``."""
