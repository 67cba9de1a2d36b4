"""Several nodes on one PostgreSQL database (GitHub issue 16): the registry, the cluster bus
(LISTEN/NOTIFY) and meeting placement, driven through real `voice-connector serve`
processes with boto3 and SIPp.

- A connector change made through one node governs the next INVITE on another (the cache
  invalidation travels over NOTIFY; without it the other node answers from its cache).
- DeleteAttendee through a third node ends the caller's call on the first at once, by the
  bus, not by the 5 s reconciler.
- Concurrent first joins through two nodes place the meeting once.
- kill -9 of a node: `GET /admin/nodes` shows it dead, and its meeting is placed again at
  its next join; SIGTERM: the node shows draining while it drains.
"""

from __future__ import annotations

import re
import threading
import time
import uuid

from vctest.sip_suite import helpers, wait_for

CALLER = "+12065550100"


def join_keys(host: str, token: str) -> dict[str, str]:
    return {"vc_host": host, "token": token, "from_user": CALLER, "rtp_port": "40000"}


def sipp(node, scenario: str, keys: dict[str, str], tmp_path, tag: str, timeout_s: int = 20):
    return helpers().run_sipp(node, scenario, keys, tmp_path, tag=tag, timeout_s=timeout_s)


def assert_one_successful_call(result) -> None:
    assert result.returncode == 0, result.describe()
    assert result.counter("SuccessfulCall") == 1, result.describe()


def nodes_by_id(node) -> dict[str, dict]:
    return {n["NodeId"]: n for n in node.signed_get("/admin/nodes", {})["Nodes"]}


def placed_on(cluster, meeting_id: str) -> str | None:
    rows = cluster.sql(f"SELECT coalesce(node_id, '') FROM meetings WHERE id = '{meeting_id}'")
    return rows[0][0] or None if rows else None


def assert_a_change_on_one_governs_the_next_invite_on_other(one, other, tmp_path) -> None:
    vc_id, host = one.create_connector()
    # `other` reads (and caches) the connector: a forged token is refused after the policy.
    first = sipp(other, "join_refused_403.xml", join_keys(host, "forged" + uuid.uuid4().hex), tmp_path, "before")
    assert_one_successful_call(first)
    assert "termination is disabled" not in first.log, first.log
    # Disabled through `one`; the next INVITE on `other` is refused for it, though `other`
    # read the connector a moment ago (its cache keeps it for a second unless told).
    one.put_termination(vc_id, Disabled=True)
    _, _, token = one.create_attendee()
    after = sipp(other, "join_refused_403.xml", join_keys(host, token), tmp_path, "after")
    assert_one_successful_call(after)
    assert f"warning=termination is disabled on voice connector {vc_id}" in after.log, after.log


def test_a_connector_change_through_one_node_governs_the_next_invite_on_another(cluster, tmp_path):
    n1 = cluster.start("n1")
    n2 = cluster.start("n2")
    assert_a_change_on_one_governs_the_next_invite_on_other(n1, n2, tmp_path)


def test_a_lost_listen_connection_comes_back(cluster, tmp_path):
    """PostgreSQL drops both nodes' LISTEN connections: each reconnects (and drops its cache,
    as a notification may have been lost), and changes travel again."""
    n1 = cluster.start("n1")
    n2 = cluster.start("n2")
    killed = cluster.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
    )
    assert len(killed) == 2, killed
    for n in (n1, n2):
        n.wait_for_log(r"cluster bus: (reconnected|LISTEN connection back)")
    assert_a_change_on_one_governs_the_next_invite_on_other(n1, n2, tmp_path)


def assert_deletion_ends_the_call(caller_node, deleting_node, host, attendee_id, token, delete, tmp_path, tag):
    """A SIPp call through `caller_node` is ended (BYE with a Reason) once `delete()` runs
    through `deleting_node`, by the cluster bus: the reconciler (every 5 s) would have logged
    that it found the attendee or meeting gone from the store."""
    result = {}
    call = threading.Thread(
        target=lambda: result.update(r=sipp(caller_node, "join_until_bye.xml", join_keys(host, token), tmp_path, tag)),
        daemon=True,
    )
    call.start()
    caller_node.wait_for_log(rf"joined meeting[^\n]*attendee={re.escape(attendee_id)}", timeout=20)
    t0 = time.monotonic()
    delete()
    call.join(timeout=30)
    elapsed = time.monotonic() - t0
    assert not call.is_alive(), "SIPp still in the call"
    bye = result["r"]
    assert_one_successful_call(bye)  # the BYE came, with a Reason, and was answered
    assert re.search(r"^reason=\s*SIP\s*;\s*cause=\d+", bye.log, re.M), bye.log
    assert "no longer in the store" not in caller_node.log(), caller_node.log()[-3000:]
    print(f"{tag}: deletion on {deleting_node.label} -> BYE from {caller_node.label} in {elapsed * 1000:.0f} ms")


def test_delete_attendee_through_a_third_node_ends_the_call_at_once(cluster, tmp_path):
    n1 = cluster.start("n1")
    cluster.start("n2")
    n3 = cluster.start("n3")
    _, host = n1.create_connector()
    meeting_id, attendee_id, token = n3.create_attendee()
    meetings = n3.client("chime-sdk-meetings")
    assert_deletion_ends_the_call(
        n1, n3, host, attendee_id, token,
        lambda: meetings.delete_attendee(MeetingId=meeting_id, AttendeeId=attendee_id), tmp_path, "attendee",
    )
    assert placed_on(cluster, meeting_id) == "n1"


def test_delete_meeting_through_another_node_ends_its_calls_at_once(cluster, tmp_path):
    n1 = cluster.start("n1")
    n2 = cluster.start("n2")
    _, host = n1.create_connector()
    meeting_id, attendee_id, token = n1.create_attendee()
    meetings = n2.client("chime-sdk-meetings")
    assert_deletion_ends_the_call(
        n1, n2, host, attendee_id, token, lambda: meetings.delete_meeting(MeetingId=meeting_id), tmp_path, "meeting",
    )


def test_concurrent_first_joins_through_two_nodes_place_the_meeting_once(cluster, tmp_path):
    n1 = cluster.start("n1")
    n2 = cluster.start("n2")
    _, host = n1.create_connector()
    meeting_id, attendees = n1.create_meeting_with(2)
    results = {}

    def call(node, token, tag):
        results[tag] = sipp(node, "join_uac.xml", join_keys(host, token), tmp_path, tag)

    threads = [
        threading.Thread(target=call, args=(n, tok, tag), daemon=True)
        for n, (_, tok), tag in ((n1, attendees[0], "one"), (n2, attendees[1], "two"))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=40)
    for tag in ("one", "two"):
        assert_one_successful_call(results[tag])
    host_node = placed_on(cluster, meeting_id)
    assert host_node in ("n1", "n2")
    # The node that lost the race saw the winner's placement, and said so.
    other = n2 if host_node == "n1" else n1
    other.wait_for_log(rf"hosted on another node[^\n]*meeting={re.escape(meeting_id)} host={host_node}")


def test_a_killed_node_is_dead_and_its_meeting_moves_a_drained_one_drains(cluster, tmp_path):
    n1 = cluster.start("n1")
    n2 = cluster.start("n2")
    n3 = cluster.start("n3")
    nodes = wait_for(lambda: (lambda ns: ns if len(ns) == 3 else None)(nodes_by_id(n1)), 10, "three nodes")
    assert {n["State"] for n in nodes.values()} == {"live"}
    assert nodes["n1"]["This"] and not nodes["n2"]["This"]
    assert nodes["n3"]["AdvertiseSip"] == f"127.0.0.1:{n3.sip_port}"
    assert nodes["n3"]["AdvertiseHttp"] == n3.api_url
    _, host = n1.create_connector()
    meeting_id, attendees = n1.create_meeting_with(2)
    assert_one_successful_call(sipp(n3, "join_uac.xml", join_keys(host, attendees[0][1]), tmp_path, "on-n3"))
    assert placed_on(cluster, meeting_id) == "n3"

    n3.proc.kill()  # SIGKILL: no drain, no last heartbeat
    n3.proc.wait(timeout=10)
    dead = wait_for(lambda: nodes_by_id(n1)["n3"]["State"] == "dead" and nodes_by_id(n1), cluster.dead_after + 10, "n3 dead")
    assert dead["n3"]["MillisSinceHeartbeat"] > cluster.dead_after * 1000
    assert dead["n1"]["State"] == "live"
    # The dead node's meeting is placed again at its next join.
    assert_one_successful_call(sipp(n1, "join_uac.xml", join_keys(host, attendees[1][1]), tmp_path, "on-n1"))
    assert placed_on(cluster, meeting_id) == "n1"

    # SIGTERM: n2 marks itself draining before its calls are drained.
    n2.proc.send_signal(15)
    wait_for(lambda: nodes_by_id(n1)["n2"]["State"] == "draining", 10, "n2 draining")
