"""Every Redis key name of plateveil, spelled once. Each module that reads or writes one imports it
from here (``JobStore``, the limits, the review index, the intake, the reconciler, webhooks, the
registry's nudges and worker states, the local stack's readiness check), so a ``redis-cli --scan``
reads against one list. ``<...>`` is filled in by the module that owns the key.
"""

from __future__ import annotations

# the job store (plateveil.jobs)
JOB_PREFIX = "plateveil:job:"              # + <job id>: a hash, the job's record
UPLOAD_PREFIX = "plateveil:upload:"        # + <job id>: the uploaded bytes, short TTL (Redis-backed hand-off)
OPEN_INDEX = "plateveil:jobs:open"         # sorted set of open job ids by acceptance time
DLQ = "plateveil:dlq"                      # hash: job id -> reason, time and payload to replay
DLQ_INDEX = "plateveil:dlq:index"          # sorted set of dead-letter job ids by time
EVENT_STREAM = "plateveil:events"          # the completion stream (XADD, one entry per finished job)

# the upload service (producer)
RATE_PREFIX = "plateveil:rate:"            # + <key id | ip>: token buckets
INFLIGHT_PREFIX = "plateveil:inflight:"    # + <key id>: the key's share of the queue (sorted set of job ids)
INTAKE_CLAIM_PREFIX = "plateveil:intake:"  # + <sha256 of the object version>: one job per delivered version
REVIEW_PREFIX = "plateveil:review:"        # + jobs, flags, ..., lock:<job id>: the review queue
REVIEW_SESSION_PREFIX = REVIEW_PREFIX + "session:"   # + <sha256 of the cookie>: a reviewer's session (hash)

# the worker (workers)
RECONCILER_LOCK = "plateveil:reconciler:lock"
WEBHOOKS_FAILED = "plateveil:webhooks:failed"   # list of deliveries that failed for good

# the model registry (model_store.registry, workers.hotswap)
MODELS_CHANNEL = "plateveil:models"        # pub/sub: promote/rollback nudge the workers
WORKER_STATUS_PREFIX = "plateveil:worker:"  # + <hostname>:<pid>: a hash, field "models" = JSON state
