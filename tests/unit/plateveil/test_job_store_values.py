"""The job store's plain values: delivery counting, dead-letter entries, payloads from records."""

from __future__ import annotations

from plateveil.jobs import DeadLetter, Started, accepted_epoch, job_from_record
from plateveil.schema import ConcealJob, JobRecord


def _job() -> ConcealJob:
    return ConcealJob(job_id="j1", source_bucket="in", source_key="originals/j1.jpg", output_bucket="out",
                      output_key="concealed/2024/05/01/j1.jpg", style="pixelate",
                      accepted_at="2024-05-01T12:00:00.123Z", metadata={"listing-id": "L1"})


def test_unfinished_deliveries_leave_out_those_that_ended_in_a_retry_or_requeue():
    assert Started(False, attempts=4, settled=3).unfinished == 1
    assert Started(False, attempts=4, settled=0).unfinished == 4


def test_a_record_gives_back_the_payload_it_was_made_from():
    job = _job()
    assert job_from_record(JobRecord.queued(job)) == job


def test_dead_letters_round_trip_with_their_payload():
    letter = DeadLetter("j1", "worker crashed 3 times on this job", "2024-05-01T12:00:01.000Z", 4, _job().to_dict())
    again = DeadLetter.from_json(letter.to_json())
    assert again == letter and ConcealJob.from_dict(again.job) == _job()


def test_acceptance_times_become_epoch_seconds():
    assert accepted_epoch("2024-05-01T12:00:00.123Z") == 1714564800.123
