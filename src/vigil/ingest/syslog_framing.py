"""Syslog over TCP cut into messages (RFC 6587: octet counting and newline framing).

Spec: https://www.rfc-editor.org/rfc/rfc6587. The framing is detected per
message, so one connection may mix both; ``parse_syslog`` takes the messages.
"""

from __future__ import annotations

import re

# RFC 6587 section 3.4.1: MSG-LEN is NONZERO-DIGIT *DIGIT; ten digits are more
# than any frame we would accept, so a longer run of digits is not a length.
_OCTET_COUNT = re.compile(rb"[1-9][0-9]{0,9}")
_OCTET_FRAME = re.compile(rb"([1-9][0-9]{0,9}) ")
# The newline before a line that starts like an octet count.
_DIGIT_LINE = re.compile(rb"\n[1-9]")


def _lines(block: bytes, limit: int) -> list[bytes]:
    """Newline-framed messages of whole lines (the last LF removed): no CR at the end, not empty, cut to ``limit``."""
    lines = block.split(b"\n")
    if b"\r" in block:
        lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    if len(block) > limit:
        lines = [line[:limit] for line in lines]
    return [line for line in lines if line]


class SyslogFramer:
    """Cuts one TCP stream into syslog messages, framed as RFC 6587 allows.

    Spec: https://www.rfc-editor.org/rfc/rfc6587 section 3.4. Senders mix the
    framings, so each frame is judged on its own: one that starts with a
    digit 1-9 followed by digits and a space is octet counted (``LEN SP MSG``),
    anything else ends at a newline (a CR before it is dropped; empty lines are
    skipped). Memory stays bounded: of a frame longer than ``max_bytes`` (by
    its count, or without a newline within ``max_bytes``) the first
    ``max_bytes`` are emitted, for the parser to truncate, and the rest is
    skipped as it arrives. With ``max_bytes`` above the parser's
    ``max_entry_bytes`` the parser marks such a message as cut, its
    ``data["truncated"]`` then a lower bound of the length sent.

    >>> framer = SyslogFramer(1024)
    >>> framer.feed(b"10 <13>hello\\n<13>wor"), framer.feed(b"ld\\r\\n")
    ([b'<13>hello\\n'], [b'<13>world'])
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        self.max_bytes = max_bytes
        self._buf = bytearray()
        # Bytes of an over-long octet-counted frame still to skip.
        self._skip = 0
        # Whether the rest of an over-long newline-terminated frame is being skipped.
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not complete yet (at most about ``max_bytes``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """The messages completed by ``data``, in order.

        Runs of newline-framed messages are cut with one ``split`` each; an
        octet-counted frame, or a line that starts with a digit, is taken one
        at a time.
        """
        self._buf += data
        buf = bytes(self._buf)  # one copy, so that slices are bytes without another
        out: list[bytes] = []
        limit = self.max_bytes
        size = len(buf)
        pos = 0
        match_frame = _OCTET_FRAME.match
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                pos += step
                self._skip -= step
                continue
            if self._discarding:
                end = buf.find(b"\n", pos)
                if end < 0:
                    pos = size
                    break
                pos = end + 1
                self._discarding = False
                continue
            if not 0x31 <= buf[pos] <= 0x39:
                end = buf.find(b"\n", pos)
                if 0 <= end < size - 1 and not 0x31 <= buf[end + 1] <= 0x39:
                    # Whole lines up to the next one that may be octet counted.
                    m = _DIGIT_LINE.search(buf, end)
                    last = m.start() if m is not None else buf.rfind(b"\n", end)
                    out.extend(_lines(buf[pos:last], limit))
                    pos = last + 1
                    continue
            else:
                m = match_frame(buf, pos)
                # Octet-counted frames in a row, as long as they are whole and within the limit.
                while m is not None:
                    start = m.end()
                    stop = start + int(m[1])
                    if stop - start > limit or stop > size:
                        break
                    out.append(buf[start:stop])
                    pos = stop
                    m = match_frame(buf, pos)
                if m is None and (pos == size or not 0x31 <= buf[pos] <= 0x39):
                    continue
                if m is not None:
                    start = m.end()
                    length = int(m.group(1))
                    take = min(length, limit)
                    if size - start < take:
                        break
                    out.append(buf[start : start + take])
                    pos = start + take
                    self._skip = length - take
                    continue
                m = _OCTET_COUNT.match(buf, pos)
                if m is not None and m.end() == size:
                    break  # the length or what follows it has not arrived yet
            end = buf.find(b"\n", pos)
            if end < 0:
                if size - pos > limit:
                    out.append(buf[pos : pos + limit])
                    pos += limit
                    self._discarding = True
                    continue
                break
            frame_end = end - 1 if end > pos and buf[end - 1] == 0x0D else end
            if frame_end > pos:
                out.append(buf[pos : min(frame_end, pos + limit)])
            pos = end + 1
        del self._buf[:pos]
        return out

    def flush(self) -> list[bytes]:
        """At the end of the stream: the unterminated remainder as a last message, if any.

        A partial octet-counted frame gives what arrived of its message.
        """
        rest = bytes(self._buf)
        self._buf.clear()
        self._skip = 0
        discarding, self._discarding = self._discarding, False
        if discarding:
            return []
        m = _OCTET_COUNT.match(rest)
        if m is not None and rest[m.end() : m.end() + 1] == b" ":
            rest = rest[m.end() + 1 :]
        rest = rest[: self.max_bytes].rstrip(b"\r")
        return [rest] if rest else []
