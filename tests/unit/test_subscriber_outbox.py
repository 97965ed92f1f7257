"""A push stream's outbox: bounded, and emptied in one write however much waits."""

import asyncio

from mwkit.directory.server import SUBSCRIBER_QUEUE, Subscriber


def test_everything_waiting_goes_out_in_one_write():
    async def scenario():
        outbox = Subscriber()
        for n in range(3):
            assert outbox.offer(f"message {n}\n".encode())
        first = await outbox.next()
        assert outbox.offer(b"later\n")
        second = await outbox.next()
        outbox.end()
        return first, second, outbox.bytes, await outbox.next()

    first, second, left, after_end = asyncio.run(scenario())
    assert first == b"message 0\nmessage 1\nmessage 2\n" and second == b"later\n"
    assert left == 0 and after_end is None


def test_a_full_outbox_refuses_more_but_always_takes_one():
    outbox = Subscriber()
    assert outbox.offer(b"x" * (64 << 20))  # one message, however large
    assert not outbox.offer(b"y")
    small = Subscriber()
    assert all(small.offer(b"m") for _ in range(SUBSCRIBER_QUEUE))
    assert not small.offer(b"one too many")
