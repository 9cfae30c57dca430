"""Token buckets of the OAuth endpoints (RFC 6749 §10.10): rate, burst, bounded memory."""

from __future__ import annotations

from ensu.oauth.throttle import Throttle, TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("k", 0.0) == 0.5  # one token is 1/rate seconds away
    assert bucket.take("k", 0.5) == 0.0
    assert bucket.take("k", 0.5) > 0.0


def test_keys_are_independent() -> None:
    bucket = TokenBucket(rate=1.0, burst=1.0)
    assert bucket.take("a", 0.0) == 0.0
    assert bucket.take("a", 0.0) > 0.0
    assert bucket.take("b", 0.0) == 0.0


def test_memory_is_bounded_whatever_the_keys() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, max_keys=100)
    for index in range(1000):
        bucket.take(f"key-{index}", 0.0)
        assert len(bucket) <= 100
    # Full buckets are forgotten first: a key still in debt survives a prune.
    bucket = TokenBucket(rate=1.0, burst=1.0, max_keys=3)
    bucket.take("busy", 10.0)
    bucket.take("idle-1", 0.0)
    bucket.take("idle-2", 0.0)
    bucket.take("new", 10.0)
    assert bucket.take("busy", 10.0) > 0.0


def test_retry_after_is_whole_seconds() -> None:
    clock = [0.0]
    throttle = Throttle(rate=0.4, burst=1.0, clock=lambda: clock[0])
    assert throttle.check_client("c") == 0
    assert throttle.check_client("c") == 3  # 2.5 s rounded up
    assert throttle.check_ip("127.0.0.1") == 0
