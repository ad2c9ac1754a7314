"""The DynamoDB saver's item layout and history walk, without a server."""

from __future__ import annotations

import os
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

pytest.importorskip("boto3")

from graphyard.persistence.dynamodb._codec import (
    CHUNK_BYTES,
    INLINE_MAX,
    checkpoint_sk,
    chunk_prefix,
    history_sk,
    item_size,
    ns_bounds,
    pack,
    place,
    split_sk,
    unpack,
    write_sk,
)
from graphyard.persistence.dynamodb._walk import Group, NeedGroup, walk

SERDE = JsonPlusSerializer()


def test_sort_keys_of_any_namespace_and_id_split_back_and_stay_in_their_namespace() -> None:
    for ns, cid, task in [("", "c1", "t"), ("a#b%c", "id#1", "task#x%"), ("child:1|x", "9", "")]:
        low, high = ns_bounds(ns)
        for sk in (checkpoint_sk(ns, cid), history_sk(ns, cid), write_sk(ns, cid, task, -3)):
            assert split_sk(sk) == (ns, cid)
            assert low < sk < high
        other_low, other_high = ns_bounds(ns + "#")  # a namespace that extends this one
        assert not other_low <= checkpoint_sk(ns, cid) <= other_high


def test_a_checkpoints_own_items_sort_right_after_it_and_before_the_next_checkpoint() -> None:
    mine = [
        history_sk("", "c1"),
        write_sk("", "c1", "t", 0),
        chunk_prefix(checkpoint_sk("", "c1"), "g"),
    ]
    assert all(checkpoint_sk("", "c1") < sk < checkpoint_sk("", "c2") for sk in mine)


def test_payloads_compress_only_when_it_pays_and_round_trip() -> None:
    text = pack(["json", b"hello " * 1000])
    noise = pack(["bytes", os.urandom(5000)])
    assert text[0] == 1 and len(text) < 200
    assert noise[0] == 0
    assert unpack(text) == ["json", b"hello " * 1000]
    assert unpack(noise)[0] == "bytes"


def _item(sk: str = "#c1") -> dict[str, Any]:
    return {"pk": {"S": "t"}, "sk": {"S": sk}, "k": {"S": "c"}}


def test_a_payload_over_the_inline_limit_becomes_chunks_written_before_their_item() -> None:
    payload = os.urandom(INLINE_MAX + CHUNK_BYTES + 1)
    placed = place(_item(), payload, ttl=123, s3_bucket=None)

    assert "d" not in placed.item and int(placed.item["n"]["N"]) == len(placed.chunks) == 3
    assert b"".join(c["d"]["B"] for c in placed.chunks) == payload
    assert all(item_size(c) < 400 * 1024 for c in placed.chunks)
    assert {c["ttl"]["N"] for c in placed.chunks} == {"123"} == {placed.item["ttl"]["N"]}
    group = Group("", "c1")
    for chunk in placed.chunks[:-1]:
        group.add(chunk)
    group.add(placed.item)
    assert not group.readable  # a chunk is missing: the checkpoint does not exist yet
    group.add(placed.chunks[-1])
    assert group.readable and group.payload(placed.item, fetch=lambda key: b"") == payload


def test_an_oversized_payload_goes_to_s3_when_a_bucket_is_set() -> None:
    placed = place(_item(), b"x" * (INLINE_MAX + 1), ttl=None, s3_bucket="b", s3_prefix="p/")
    assert placed.chunks == [] and placed.s3 is not None
    assert placed.item["s3"]["S"] == placed.s3[0] and placed.s3[0].startswith("p/t/")


def test_item_size_follows_dynamodbs_rules() -> None:
    assert item_size({"ab": {"S": "héllo"}}) == 2 + 6
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"l": {"L": [{"S": "ab"}, {"S": "c"}]}}) == 1 + 3 + (1 + 2) + (1 + 1)


def _checkpoint_item(cid: str, parent: str | None, values: dict[str, Any]) -> dict[str, Any]:
    checkpoint = {"id": cid, "channel_values": values, "channel_versions": {}, "v": 1}
    item = _item(checkpoint_sk("", cid))
    item["d"] = {"B": pack(list(SERDE.dumps_typed(checkpoint)))}
    item["m"] = {"S": "{}"}
    if parent:
        item["p"] = {"S": parent}
    return item


def _write_item(
    cid: str, task: str, idx: int, channel: str, value: Any, *, seq: int = 1, special: bool = False
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": "t"},
        "sk": {"S": write_sk("", cid, task, idx)},
        "k": {"S": "w"},
        "q": {"N": str(seq)},
        "d": {"B": pack([[idx, channel, *SERDE.dumps_typed(value)]])},
    }
    if special:
        item["r"] = {"BOOL": True}
    return item


def _groups(*items: dict[str, Any]) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    for item in items:
        _, cid = split_sk(item["sk"]["S"])
        groups.setdefault(cid, Group("", cid)).add(item)
    return groups


def test_the_walk_follows_parents_stops_at_a_seed_and_skips_a_forks_siblings() -> None:
    groups = _groups(
        _checkpoint_item("c1", None, {"m": ["seed"]}),
        _write_item("c1", "t1", 0, "m", "a"),
        _checkpoint_item("c2", "c1", {}),
        _write_item("c2", "t2", 0, "m", "b"),
        _checkpoint_item("c3", "c2", {}),  # a sibling branch: never on the path below
        _write_item("c3", "t3", 0, "m", "sibling"),
        _checkpoint_item("c4", "c2", {}),
        _write_item("c4", "t4", 0, "m", "pending at the target: not history"),
    )
    walked = walk(groups["c4"], ["m"], groups.get, SERDE, fetch=lambda key: b"")
    history = walked.histories(SERDE)["m"]

    assert history["seed"] == ["seed"]
    assert [w[2] for w in history["writes"]] == ["a", "b"]
    assert [g.cid for g in walked.visited] == ["c4", "c2", "c1"]


def test_the_walk_asks_for_an_ancestor_it_has_not_read() -> None:
    groups = _groups(_checkpoint_item("c2", "c1", {}))

    def resolve(cid: str) -> Group | None:
        if cid not in groups:
            raise NeedGroup(cid)
        return groups[cid]

    with pytest.raises(NeedGroup) as need:
        walk(groups["c2"], ["m"], resolve, SERDE, fetch=lambda key: b"")
    assert need.value.checkpoint_id == "c1"


def test_a_history_record_ends_the_walk_with_its_seed_and_writes_first() -> None:
    record = {
        "pk": {"S": "t"},
        "sk": {"S": history_sk("", "c2")},
        "k": {"S": "h"},
        "d": {
            "B": pack({"m": [list(SERDE.dumps_typed(["old"])), [["t0", *SERDE.dumps_typed("x")]]]})
        },
    }
    groups = _groups(
        _checkpoint_item("c2", "c1-was-pruned", {}),
        record,
        _write_item("c2", "t2", 0, "m", "y"),
        _checkpoint_item("c3", "c2", {}),
    )
    history = walk(groups["c3"], ["m"], groups.get, SERDE, fetch=lambda key: b"").histories(SERDE)

    assert history["m"]["seed"] == ["old"]
    assert [w[2] for w in history["m"]["writes"]] == ["x", "y"]


def test_writes_saved_twice_keep_the_first_value_unless_they_are_special() -> None:
    """The official savers' rule per (task, idx): insert-or-ignore, special writes replace."""
    group = Group("", "c1")
    group.add(_checkpoint_item("c1", None, {}))
    group.add(_write_item("c1", "t", 0, "a", "first", seq=1))
    later = _write_item("c1", "t", 0, "a", "second", seq=2)
    later["sk"] = {"S": write_sk("", "c1", "t", 0, 2)}  # a longer re-save (the null task's)
    later["d"] = {
        "B": pack([[0, "a", *SERDE.dumps_typed("second")], [1, "b", *SERDE.dumps_typed("new")]])
    }
    group.add(later)
    group.add(_write_item("c1", "t", -1, "__error__", "old", seq=3, special=True))
    newer_error = _write_item("c1", "t", -1, "__error__", "new", seq=4, special=True)
    newer_error["sk"] = {"S": write_sk("", "c1", "t", -1) + "x"}
    group.add(newer_error)

    assert [(c, v) for _, c, v in group.pending_writes(SERDE, fetch=lambda key: b"")] == [
        ("__error__", "new"),
        ("a", "first"),
        ("b", "new"),
    ]
