"""Exceptions of the firmware bridge."""


class BridgeError(Exception):
    """Base of the bridge's errors (exit code 2 at the CLI)."""

    exit_code = 2


class FrameError(BridgeError):
    """A frame read from the link was rejected; the link drops it and resynchronises."""


class FrameCRCError(FrameError):
    """The CRC-32C of a frame does not match its contents."""

    def __init__(self, expected: int, actual: int, length: int = 0) -> None:
        self.expected = expected
        self.actual = actual
        self.length = length
        super().__init__(f"frame CRC-32C mismatch: frame says 0x{expected:08X}, contents give 0x{actual:08X} ({length} B)")


class FrameDecodeError(FrameError):
    """A frame could not be decoded: bad COBS, too short or long, bad version, length or payload."""

    def __init__(self, reason: str, length: int = 0) -> None:
        self.reason = reason
        self.length = length
        super().__init__(f"frame decode error: {reason} ({length} B)")


class CommandTimeout(BridgeError):
    """A host-to-MCU command got no acknowledgement in time."""

    exit_code = 1

    def __init__(self, seq: int, msg_type: str, timeout: float) -> None:
        self.seq = seq
        self.msg_type = msg_type
        self.timeout = timeout
        super().__init__(f"no acknowledgement for {msg_type} seq {seq} within {timeout:g} s")


class CommandRejected(BridgeError):
    """The MCU answered a command with a negative acknowledgement."""

    exit_code = 1

    def __init__(self, seq: int, msg_type: str, status: str) -> None:
        self.seq = seq
        self.msg_type = msg_type
        self.status = status
        super().__init__(f"MCU rejected {msg_type} seq {seq}: {status}")


class LinkError(BridgeError):
    """The serial link could not be opened or failed."""
