"""The NMEA 0183 parser: each sentence type, talkers, checksums, RTK fix types, proprietary
pass-through, every line of every recorded fixture, and fuzzing."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.messages import FixType
from sensors.errors import NmeaError, SensorError
from sensors.gnss import (
    FixAssembler,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gst,
    Gsv,
    Proprietary,
    Rejected,
    Rmc,
    Txt,
    Vtg,
    Zda,
    parse_sentence,
    try_parse,
    with_checksum,
)
from tests._fixtures import fixture_file

GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"


def test_gga() -> None:
    r = parse_sentence(GGA)
    assert isinstance(r, Gga) and r.talker == "GP"
    assert r.tod_ns == (12 * 3600 + 35 * 60 + 19) * 10**9
    assert r.lat == pytest.approx(48 + 7.038 / 60) and r.lon == pytest.approx(11 + 31.0 / 60)
    assert (r.quality, r.num_sats, r.hdop, r.alt_m, r.geoid_sep_m) == (1, 8, 0.9, 545.4, 46.9)
    assert r.fix_type is FixType.GPS and r.raw == GGA


def test_rmc_with_date_variation_and_south_west() -> None:
    r = parse_sentence(RMC + "\r\n")
    assert isinstance(r, Rmc) and r.valid and r.date == dt.date(1994, 3, 23)
    assert (r.speed_knots, r.course_deg, r.mag_var_deg, r.mode) == (22.4, 84.4, -3.1, None)
    s = parse_sentence(with_checksum("GNRMC,010203.50,A,3349.500,S,07030.000,W,0.5,10.0,010124,,,R"))
    assert isinstance(s, Rmc) and s.lat == pytest.approx(-33.825) and s.lon == pytest.approx(-70.5)
    assert s.date == dt.date(2024, 1, 1) and s.fix_type is FixType.RTK_FIXED
    v = parse_sentence(with_checksum("GPRMC,010203,V,,,,,,,010124,,,N"))
    assert isinstance(v, Rmc) and not v.valid and v.lat is None and v.fix_type is FixType.NO_FIX


@pytest.mark.parametrize(("quality", "fix"), [(0, FixType.NO_FIX), (2, FixType.DGPS), (4, FixType.RTK_FIXED),
                                              (5, FixType.RTK_FLOAT), (6, FixType.ESTIMATED)])
def test_gga_quality_to_fix_type(quality: int, fix: FixType) -> None:
    r = parse_sentence(with_checksum(f"GNGGA,133900.00,4134.50180323,N,09345.03586581,W,{quality},19,0.7,"
                                     "280.827,M,-31.442,M,6.0,0002"))
    assert isinstance(r, Gga) and r.fix_type is fix and r.dgps_age_s == 6.0 and r.dgps_station == "0002"


@pytest.mark.parametrize(("mode", "fix"), [("RR", FixType.RTK_FIXED), ("FN", FixType.RTK_FLOAT),
                                           ("AAN", FixType.GPS), ("DA", FixType.DGPS), ("NNN", FixType.NO_FIX),
                                           ("FRA", FixType.RTK_FIXED)])
def test_gns_mode_characters(mode: str, fix: FixType) -> None:
    r = parse_sentence(with_checksum(f"GNGNS,014035.00,4332.69262,S,17235.48549,E,{mode},13,0.9,25.63,11.24,,,V"))
    assert isinstance(r, Gns) and r.mode == mode and r.fix_type is fix
    assert r.lat == pytest.approx(-(43 + 32.69262 / 60)) and r.num_sats == 13 and r.nav_status == "V"


def test_gsa_gst_vtg_gsv_zda_gll_txt() -> None:
    gsa = parse_sentence(with_checksum("GNGSA,A,3,80,71,73,79,69,,,,,,,,1.83,1.09,1.47,2"))
    assert isinstance(gsa, Gsa) and gsa.fix_mode == 3 and gsa.prns == (80, 71, 73, 79, 69)
    assert (gsa.pdop, gsa.hdop, gsa.vdop, gsa.system_id) == (1.83, 1.09, 1.47, 2)
    gst = parse_sentence(with_checksum("GPGST,172814.0,0.006,0.023,0.020,273.6,0.023,0.020,0.031"))
    assert isinstance(gst, Gst) and (gst.lat_std_m, gst.lon_std_m, gst.alt_std_m) == (0.023, 0.020, 0.031)
    vtg = parse_sentence("$GNVTG,,T,,M,0.117,N,0.216,K,A*3F")
    assert isinstance(vtg, Vtg) and vtg.course_true_deg is None and vtg.speed_kmh == 0.216 and vtg.mode == "A"
    old = parse_sentence(with_checksum("GPVTG,054.7,034.4,005.5,010.2"))
    assert isinstance(old, Vtg) and old.course_true_deg == 54.7 and old.speed_kmh == 10.2
    gsv = parse_sentence("$GPGSV,3,2,12,25,37,166,39,32,21,098,,02,19,314,,07,18,177,*73")
    assert isinstance(gsv, Gsv) and (gsv.num_msgs, gsv.msg_num, gsv.sats_in_view) == (3, 2, 12)
    assert [s.prn for s in gsv.sats] == [25, 32, 2, 7] and gsv.sats[1].snr_db is None
    gsv41 = parse_sentence(with_checksum("GAGSV,1,1,01,05,40,120,33,7"))
    assert isinstance(gsv41, Gsv) and gsv41.signal_id == "7"
    zda = parse_sentence("$GNZDA,055234.200,05,08,2026,00,00*44")
    assert isinstance(zda, Zda) and zda.date == dt.date(2026, 8, 5) and zda.tod_ns == (5 * 3600 + 52 * 60 + 34.2) * 1e9
    gll = parse_sentence("$GPGLL,4901.5940,N,01203.9163,E,165744,A,A*4B")
    assert isinstance(gll, Gll) and gll.valid and gll.lat == pytest.approx(49 + 1.594 / 60)
    txt = parse_sentence(with_checksum("GPTXT,01,01,02,ANTSTATUS=OK"))
    assert isinstance(txt, Txt) and txt.text == "ANTSTATUS=OK"


@pytest.mark.parametrize("talker", ["GP", "GN", "GL", "GA", "GB", "BD"])
def test_every_talker(talker: str) -> None:
    r = parse_sentence(with_checksum(f"{talker}GSA,A,3,01,02,,,,,,,,,,,2.0,1.0,1.5"))
    assert isinstance(r, Gsa) and r.talker == talker


def test_proprietary_passed_through() -> None:
    r = parse_sentence("$PGRME,5.5,M,7.0,M,8.9,M*28")
    assert isinstance(r, Proprietary) and r.manufacturer == "GRM" and r.sentence_id == "E"
    assert r.fields == ("5.5", "M", "7.0", "M", "8.9", "M") and r.raw == "$PGRME,5.5,M,7.0,M,8.9,M*28"
    ubx = parse_sentence(with_checksum("PUBX,00,081350.00,4717.113210,N"))
    assert isinstance(ubx, Proprietary) and ubx.manufacturer == "UBX" and ubx.fields[0] == "00"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (GGA[:-2] + "48", "checksum mismatch: sentence says 48, computed 47"),
        (GGA[:-3], "no checksum"),
        (GGA[:-2] + "G7", "bad checksum field"),
        ("", "empty line"),
        ("GPGGA,1*00", "does not start with '$'"),
        ("!AIVDM,1,1,,A,13aEOK?P00PD2wVMdLDRhgvL289?,0*26", "AIS"),
        ("$HCHDG,212.6,,,1.6,E*29", "unsupported talker 'HC'"),
        ("$GPRMB,A,,,,,,,,,,,,A,A*0B", "unsupported sentence type 'RMB'"),
        (with_checksum("GPGGA,123519,4807.038,N,01131.000,E,9,08,0.9,545.4,M,46.9,M,,"), "quality 9 out of range"),
        (with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0NaN,545.4,M,46.9,M,,"), "bad HDOP '0NaN'"),
        (with_checksum("GPGGA,123519,4807.038,N,01131.000,X,1,08,0.9,545.4,M,46.9,M,,"), "bad longitude hemisphere"),
        (with_checksum("GPGGA,123519,4867.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "minutes"),
        (with_checksum("GPGGA,123519,4807.038,,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "without hemisphere"),
        (with_checksum("GPGGA,256019,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"), "UTC time out of range"),
        (with_checksum("GPGGA,123519,4807.038,N"), "GGA needs at least 14 fields"),
        (with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W"), "date out of range"),
        (with_checksum("GPRMC,123519,X,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"), "bad RMC status"),
        (with_checksum("GNGNS,014035.00,4332.69262,S,17235.48549,E,QQ,13,0.9,25.63,11.24,,,V"), "bad GNS mode"),
        (with_checksum("GPGSV,3,4,12"), "inconsistent"),
        ("$GPGGA,12\xe9519*00", "not printable ASCII"),
        (b"$GPGGA,\xff*00", "not ASCII"),
    ],
)
def test_rejections_name_the_reason(line: str | bytes, reason: str) -> None:
    with pytest.raises(NmeaError, match=re.escape(reason)) as info:
        parse_sentence(line)
    assert isinstance(info.value, SensorError)
    rej = try_parse(line)
    assert isinstance(rej, Rejected) and reason in rej.reason


def test_checksum_optional_when_asked() -> None:
    r = parse_sentence(GGA[:-3], require_checksum=False)
    assert isinstance(r, Gga)


# ---- every line of every recorded fixture ---------------------------------------------------

GNSS_FILES = ["gnss/munich_drive_2014.nmea", "gnss/regensburg_drive_geko301_2010.nmea",
              "gnss/receivers/neo-m8n.log", "gnss/receivers/nmea-fuzzy-cases.log", "gnss/receivers/nmea-rtk.log",
              "gnss/receivers/quectel-l76k-nmea.log", "gnss/receivers/ublox-f9p-hpnmea.log",
              "gnss/genivi_rpi_regensburg_2016.log"]
# reasons a fixture's lines may be rejected for (everything else must parse)
EXPECTED_REJECTS = {
    "gnss/munich_drive_2014.nmea": {"bad HDOP '0NaN'": 1, "bad PDOP '0NaN'": 1},
    "gnss/regensburg_drive_geko301_2010.nmea": {"unsupported sentence type 'RMB'": 790,
                                               "unsupported sentence type 'BOD'": 789,
                                               "unsupported talker 'HC'": 789,
                                               "unsupported sentence type 'RTE'": 789},
}


def _lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip() and not ln.startswith(b"#")]


@pytest.mark.fixtures
@pytest.mark.parametrize("rel", GNSS_FILES)
def test_every_fixture_line_parses_or_is_rejected_with_reason(rel: str) -> None:
    lines = _lines(fixture_file(rel))
    assert lines
    reasons: dict[str, int] = {}
    parsed = 0
    for ln in lines:
        for form in (ln, ln.decode("latin-1")):  # bytes and text
            r = try_parse(form)
            assert not isinstance(r, Exception)
        r = try_parse(ln)
        if isinstance(r, Rejected):
            assert r.reason
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        else:
            parsed += 1
            assert r.raw == ln.decode().strip()
    if rel.endswith("genivi_rpi_regensburg_2016.log"):
        # not NMEA: every line is rejected (GENIVI has its own reader), none crashes
        assert parsed == 0 and sum(reasons.values()) == len(lines)
    else:
        assert reasons == EXPECTED_REJECTS.get(rel, {})
        assert parsed == len(lines) - sum(reasons.values())


@pytest.mark.fixtures
def test_rtk_fixture_fix_types_through_the_assembler() -> None:
    asm = FixAssembler("gnss0")
    fixes = []
    for ln in _lines(fixture_file("gnss/receivers/nmea-rtk.log")):
        fixes += asm.push(parse_sentence(ln))
    fixes += asm.flush()
    assert len(fixes) == 122
    kinds = [f.fix_type for f in fixes]
    assert kinds.count(FixType.RTK_FIXED) == 18 and kinds.count(FixType.DGPS) == 104
    first_rtk = next(f for f in fixes if f.fix_type is FixType.RTK_FIXED)
    assert first_rtk.lat_deg == pytest.approx(41 + 34.50180205 / 60, abs=1e-12)
    assert first_rtk.lon_deg == pytest.approx(-(93 + 45.03586649 / 60), abs=1e-12)
    assert first_rtk.alt_m == pytest.approx(280.827) and first_rtk.num_sats == 19 and first_rtk.hdop == pytest.approx(0.7)
    # $GNGGA,133859.80 ... with the date 180320 of its RMC
    t0 = int(dt.datetime(2020, 3, 18, 13, 38, 59, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert first_rtk.fix_utc_ns == t0 + 800_000_000
    assert first_rtk.speed_mps == pytest.approx(0.008 * 1852 / 3600, rel=1e-6)


def test_assembler_combines_an_epoch() -> None:
    asm = FixAssembler("g")
    out = []
    for body in ["GNGSA,A,3,01,02,03,04,,,,,,,,,1.5,0.8,1.2,1",
                 "GNGNS,120000.00,4807.0000,N,01131.0000,E,FR,14,0.8,500.0,47.0,1.0,0001,V",
                 "GNGST,120000.00,0.5,0.03,0.02,10.0,0.03,0.04,0.05",
                 "GNRMC,120000.00,A,4807.0000,N,01131.0000,E,10.0,90.0,010724,,,F",
                 "GNVTG,90.0,T,,M,10.0,N,18.52,K,F",
                 "GNGNS,120001.00,4807.0010,N,01131.0000,E,RR,15,0.7,500.1,47.0,1.0,0001,V"]:
        out += asm.push(parse_sentence(with_checksum(body)))
    assert len(out) == 1
    f = out[0]
    assert f.fix_type is FixType.RTK_FIXED and f.num_sats == 14 and f.hdop == pytest.approx(0.8)
    assert f.h_std_m == pytest.approx(math.hypot(0.03, 0.04)) and f.v_std_m == pytest.approx(0.05)
    assert f.speed_mps == pytest.approx(10 * 1852 / 3600) and f.course_deg == 90.0
    assert f.fix_utc_ns == int(dt.datetime(2024, 7, 1, 12, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    last = asm.flush()
    assert len(last) == 1 and last[0].fix_type is FixType.RTK_FIXED and last[0].num_sats == 15


# ---- fuzzing: nothing but NmeaError, or a Rejected --------------------------------------------

@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_bytes(data: bytes) -> None:
    try:
        parse_sentence(data)
    except NmeaError:
        pass
    assert isinstance(try_parse(data), (Rejected, Gga, Rmc, Gsa, Gst, Vtg, Gsv, Gns, Zda, Gll, Txt, Proprietary))


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=120))
def test_fuzz_text(text: str) -> None:
    try:
        parse_sentence(text)
    except NmeaError:
        pass


FIELD = st.text(alphabet="0123456789.,-+NSEWAVTMKRFDP*$ ", max_size=14)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(["GPGGA", "GNRMC", "GNGSA", "GPGST", "GNVTG", "GPGSV", "GNGNS", "GNZDA", "GPGLL",
                        "GPTXT", "PGRME"]),
       st.lists(FIELD, max_size=20))
def test_fuzz_well_formed_envelopes(addr: str, fields: list[str]) -> None:
    """Valid checksums around random fields reach every field parser."""
    body = ",".join([addr, *fields]).replace("*", "").replace("$", "")
    try:
        rec = parse_sentence(with_checksum(body))
    except NmeaError:
        return
    asm = FixAssembler()
    for fix in asm.push(rec) + asm.flush():  # the assembler takes whatever parsed
        fix.encode()


def test_assembler_midnight_rollover_before_the_new_date() -> None:
    asm = FixAssembler()
    out = []
    for body in ["GPRMC,235959.00,A,4807.0000,N,01131.0000,E,0.0,0.0,311224,,,A",
                 "GPGGA,235959.00,4807.0000,N,01131.0000,E,1,08,1.0,500.0,M,47.0,M,,",
                 "GPGGA,000000.00,4807.0000,N,01131.0000,E,1,08,1.0,500.0,M,47.0,M,,",
                 "GPGGA,000001.00,4807.0000,N,01131.0000,E,1,08,1.0,500.0,M,47.0,M,,"]:
        out += asm.push(parse_sentence(with_checksum(body)))
    out += asm.flush()
    new_year = int(dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc).timestamp()) * 10**9
    assert [f.fix_utc_ns for f in out] == [new_year - 10**9, new_year, new_year + 10**9]
