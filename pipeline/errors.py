"""Exceptions of the pipeline package."""


class PipelineError(Exception):
    """Base of the pipeline's errors (exit code 2 at the CLI)."""

    exit_code = 2


class CodecError(PipelineError):
    """Encoding or decoding failed: corrupt, truncated or unsupported encoded data, or input a
    codec cannot take. ``codec`` names the codec (or ``""`` when the header was unreadable)."""

    def __init__(self, message: str, codec: str = "") -> None:
        super().__init__(message)
        self.codec = codec


class CodecIntegrityError(CodecError):
    """The payload's CRC32 does not match its header: the data was corrupted or truncated."""

    def __init__(self, codec: str, expected: int, actual: int) -> None:
        super().__init__(f"{codec or 'codec'}: payload CRC32 mismatch (header says {expected:08x}, "
                         f"payload has {actual:08x}): corrupt or truncated data", codec)
        self.expected = expected
        self.actual = actual


class ChunkingError(PipelineError):
    """Bad chunker input (mismatched array lengths, times going backwards beyond a closed window)."""


class NoPoseError(PipelineError):
    """No trustworthy vehicle pose at ``time`` (UTC seconds): ``reason`` says why (no
    fixes, fix lost or too poor, a gap, outside the fixes' time span, no heading yet)."""

    def __init__(self, time: float, reason: str, count: int = 1) -> None:
        self.time = time
        self.reason = reason
        self.count = count
        super().__init__(f"no pose at t={time:.6f}: {reason}" + (f" ({count} points)" if count > 1 else ""))


class CameraProcessingError(PipelineError):
    """A camera frame could not be processed (undecodable JPEG, bad image shape, EXIF that
    cannot be written). ``camera_id`` and ``frame_index`` name the frame when known."""

    def __init__(self, message: str, camera_id: str = "", frame_index: int = -1) -> None:
        where = f"{camera_id}#{frame_index}: " if camera_id else ""
        super().__init__(where + message)
        self.camera_id = camera_id
        self.frame_index = frame_index


class RedactionError(CameraProcessingError):
    """Privacy redaction is unavailable or failed (a detector model missing from the installed
    OpenCV, an image it cannot take): frames are never passed on unredacted, so this stops them."""
