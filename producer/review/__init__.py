"""The moderators' review pages of the upload service: a queue of finished jobs (flagged first), each
job's original and concealed photo side by side, corrections re-rendered with the pipeline's own
concealment, and the ``POST /v1/jobs/{id}/flag`` call. See :mod:`producer.review.routes`."""
