"""GNSS and IMU input: an NMEA 0183 parser, a per-epoch fix assembler, and sources (NMEA
file, serial port, gpsd, Velodyne position packets, GENIVI logs) that yield bus messages.

Sources sit behind :class:`GnssSource` in :data:`GNSS_SOURCES`; :func:`open_gnss_source`
picks one from the spec (``gpsd://HOST:PORT``, ``serial:///dev/ttyUSB0?baud=115200``,
a pcap/bag with Velodyne position packets, a GENIVI log or an NMEA file).
"""

from sensors.gnss._fix import FixAssembler, utc_ns
from sensors.gnss._nmea import (
    TALKERS,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gst,
    Gsv,
    NmeaRecord,
    Proprietary,
    Rejected,
    Rmc,
    SatInView,
    Txt,
    Vtg,
    Zda,
    checksum,
    parse_sentence,
    try_parse,
    with_checksum,
)
from sensors.gnss._sources import (
    GNSS_SOURCES,
    GnssItem,
    GnssSource,
    GnssStats,
    GpsdSource,
    NmeaFileSource,
    SerialNmeaSource,
    VelodynePositionSource,
    gnss_source_kind,
    gpsd_tpv_to_fix,
    open_gnss_source,
)
from sensors.gnss._genivi import GeniviLogSource

__all__ = [
    "GNSS_SOURCES",
    "TALKERS",
    "FixAssembler",
    "GeniviLogSource",
    "Gga",
    "Gll",
    "Gns",
    "GnssItem",
    "GnssSource",
    "GnssStats",
    "GpsdSource",
    "Gsa",
    "Gst",
    "Gsv",
    "NmeaFileSource",
    "NmeaRecord",
    "Proprietary",
    "Rejected",
    "Rmc",
    "SatInView",
    "SerialNmeaSource",
    "Txt",
    "VelodynePositionSource",
    "Vtg",
    "Zda",
    "checksum",
    "gnss_source_kind",
    "gpsd_tpv_to_fix",
    "open_gnss_source",
    "parse_sentence",
    "try_parse",
    "utc_ns",
    "with_checksum",
]
