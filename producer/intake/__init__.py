"""Event intake: S3-style object notifications from any path (the API's ``/v1/s3-events``, SNS HTTP
delivery, MinIO webhooks, an SQS queue) parsed into :class:`~producer.intake.records.ObjectRecord`
values and turned into jobs by ONE function, :func:`producer.intake.intake.submit_batch`."""
