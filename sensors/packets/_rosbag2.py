"""ROS 2 bags (sqlite3 or MCAP storage) holding ``velodyne_msgs/msg/VelodyneScan``.

Read with the ``rosbags`` library; the Velodyne message types are registered from their
definitions here so no ROS installation is needed. Bags whose metadata leaves the
serialization format empty (written by early rosbag2 releases) are CDR.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sensors.errors import SourceError
from sensors.packets._types import Packet, SourceStats

log = logging.getLogger(__name__)

VELODYNE_SCAN = "velodyne_msgs/msg/VelodyneScan"
VELODYNE_PACKET = "velodyne_msgs/msg/VelodynePacket"
_MSG_DEFS = {
    VELODYNE_PACKET: "builtin_interfaces/Time stamp\nuint8[1206] data\n",
    VELODYNE_SCAN: "std_msgs/Header header\nvelodyne_msgs/VelodynePacket[] packets\n",
}
VELODYNE_DATA_PORT = 2368
_EMPTY_FORMAT = re.compile(r"""^(\s*serialization_format:\s*)(?:""|''|)\s*$""", re.M)


def _typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict = {}
    for name, text in _MSG_DEFS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def is_bag(path: Path) -> bool:
    if path.is_dir():
        return (path / "metadata.yaml").exists()
    return path.suffix == ".mcap" or path.suffix == ".db3"


class Rosbag2Source:
    """Velodyne packets from the VelodyneScan messages of a ROS 2 bag, in bag order."""

    def __init__(self, path: str | Path, ports: set[int] | None = None, topic: str | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.topic = topic
        self.ports = set(ports) if ports else None
        self.stats = SourceStats()
        bag_dir = self.path if self.path.is_dir() else self.path.parent
        if not self.path.exists():
            raise SourceError(self.name, "no such file or directory")
        if not (bag_dir / "metadata.yaml").exists():
            raise SourceError(self.name, "not a ROS 2 bag (no metadata.yaml)")
        self._patched: tempfile.TemporaryDirectory | None = None
        try:
            self._reader = self._open(bag_dir)
        except Exception as exc:  # rosbags raises several types for a broken bag
            raise SourceError(self.name, f"cannot open ROS 2 bag: {exc}") from None
        self._typestore = _typestore()
        self.connections = [c for c in self._reader.connections if c.msgtype == VELODYNE_SCAN]
        if topic is not None:
            self.connections = [c for c in self.connections if c.topic == topic]
        if not self.connections:
            found = sorted({f"{c.topic} ({c.msgtype})" for c in self._reader.connections})
            self.close()
            raise SourceError(self.name, f"no {VELODYNE_SCAN} topic in the bag; it has: {', '.join(found) or 'nothing'}")
        for conn in self.connections:
            fmt = getattr(conn.ext, "serialization_format", "cdr") or "cdr"
            if fmt != "cdr":
                self.close()
                raise SourceError(self.name, f"topic {conn.topic}: unsupported serialization format {fmt!r}")

    def _open(self, bag_dir: Path):
        from rosbags.rosbag2 import Reader

        text = (bag_dir / "metadata.yaml").read_text()
        if _EMPTY_FORMAT.search(text):
            # Early rosbag2 releases wrote an empty serialization format; it means CDR.
            # rosbags refuses it, so read through a view of the bag with the field filled in.
            self._patched = tempfile.TemporaryDirectory(prefix="edge-agent-bag-")
            view = Path(self._patched.name)
            for item in bag_dir.iterdir():
                if item.name != "metadata.yaml":
                    (view / item.name).symlink_to(item.resolve())
            (view / "metadata.yaml").write_text(_EMPTY_FORMAT.sub(r"\1cdr", text))
            log.info("%s: empty serialization format in metadata.yaml read as cdr", self.name)
            bag_dir = view
        reader = Reader(bag_dir)
        reader.open()
        return reader

    def __enter__(self) -> Rosbag2Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        reader = getattr(self, "_reader", None)
        if reader is not None:
            try:
                reader.close()
            except Exception:  # closing a half-open reader is best effort
                pass
            self._reader = None
        if getattr(self, "_patched", None) is not None:
            self._patched.cleanup()
            self._patched = None

    def __iter__(self) -> Iterator[Packet]:
        if self._reader is None:
            raise SourceError(self.name, "source is closed")
        if self.ports is not None and VELODYNE_DATA_PORT not in self.ports:
            return
        for conn, _ts, raw in self._reader.messages(connections=self.connections):
            self.stats.frames += 1
            try:
                msg = self._typestore.deserialize_cdr(raw, conn.msgtype)
            except Exception as exc:
                raise SourceError(self.name, f"message {self.stats.frames} on {conn.topic} does not deserialize: {exc}") from None
            for pkt in msg.packets:
                stamp = pkt.stamp.sec + pkt.stamp.nanosec * 1e-9
                self.stats.packets += 1
                yield Packet(stamp, VELODYNE_DATA_PORT, pkt.data.tobytes())
