"""The reconciler reads job ids out of the broker's messages as kombu's Redis transport stores them."""

from __future__ import annotations

import json

from workers.reconcile import PRIORITY_SEP, Reconciler, _message_task_id


def _message(task_id: str) -> dict:
    # the shape kombu writes to the queue list (body elided)
    return {"body": "W1t7fV0sIHt9LCB7fV0=", "content-encoding": "utf-8", "content-type": "application/json",
            "headers": {"lang": "py", "task": "plateveil.conceal_photo", "id": task_id, "retries": 0},
            "properties": {"delivery_tag": "d1", "delivery_info": {"exchange": "", "routing_key": "q"}}}


def test_job_ids_are_read_from_queue_messages_and_unacked_entries():
    assert _message_task_id(json.dumps(_message("abc"))) == "abc"
    assert _message_task_id(json.dumps([_message("def"), "", "plateveil.conceal"]).encode()) == "def"


def test_unreadable_messages_are_skipped_not_fatal():
    for raw in ("not json", "{}", json.dumps({"headers": {}}), json.dumps([]), "[1, 2]"):
        assert _message_task_id(raw) is None


def test_every_priority_list_of_the_queue_is_scanned():
    reconciler = Reconciler.__new__(Reconciler)
    reconciler.queue = "plateveil.conceal"
    assert reconciler._queue_lists() == ["plateveil.conceal", f"plateveil.conceal{PRIORITY_SEP}3",
                                         f"plateveil.conceal{PRIORITY_SEP}6", f"plateveil.conceal{PRIORITY_SEP}9"]
