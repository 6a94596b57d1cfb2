"""Operations: what stands on top of the services and nothing imports (but entry points, scripts, tests).

``cli.py`` (the ``plateveil`` console script: each package registers its verbs), ``doctor.py`` +
``doctor_ops.py`` (``plateveil doctor`` and its checks), ``stack.py`` (the local dev stack:
``python -m plateveil_ops.stack up|down|status``), ``samples.py`` (generated car scenes with plates),
``apikeys.py`` (``plateveil keys new|hash``).
"""
