"""The GENIVI log reader against the recorded Regensburg drive."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from agent.bus.messages import FixType, GnssFix, ImuSample
from sensors.errors import LogFormatError
from sensors.gnss import GeniviLogSource, open_gnss_source
from tests._fixtures import fixture_file

LOG = "gnss/genivi_rpi_regensburg_2016.log"


def _count(path: Path, tag: str) -> int:
    return sum(1 for ln in path.read_text(encoding="latin-1").splitlines() if f",{tag}," in ln)


@pytest.mark.fixtures
def test_counts_ranges_and_monotonic_time() -> None:
    path = fixture_file(LOG)
    with open_gnss_source(path, source_id="gnss0", imu_source_id="imu0") as src:
        assert isinstance(src, GeniviLogSource)
        items = list(src)
    fixes = [i for i in items if isinstance(i, GnssFix)]
    imu = [i for i in items if isinstance(i, ImuSample)]
    # one fix per $GVGNSPOS line; one IMU sample per accelerometer+gyroscope pair
    assert len(fixes) == _count(path, "$GVGNSPOS") == 551
    assert len(imu) == _count(path, "$GVSNSACC") == _count(path, "$GVSNSGYR") == 5489
    assert src.stats.rejected == 0
    assert {f.source for f in fixes} == {"gnss0"} and {s.source for s in imu} == {"imu0"}

    # the drive is in Regensburg
    good = [f for f in fixes if f.has_fix]
    assert len(good) == 513  # fixStatus 3 (3D) on 512 lines, 2 (2D) on one, 0 (none) on 38
    assert all(48.95 < f.lat_deg < 49.10 and 11.95 < f.lon_deg < 12.20 for f in good)
    assert all(300 < f.alt_m < 420 for f in good if not math.isnan(f.alt_m))
    assert all(0 <= f.speed_mps < 40 for f in good if not math.isnan(f.speed_mps))
    assert max(f.speed_mps for f in good) > 5  # it moves
    assert all(f.fix_type is FixType.GPS for f in good)

    # IMU: gravity on z, gyro rates of a car (rad/s)
    az = [s.accel[2] for s in imu]
    assert 9.0 < sum(az) / len(az) < 10.5
    assert all(abs(g) < 3.0 for s in imu for g in s.gyro)
    assert all(s.temperature_c is not None and -20 < s.temperature_c < 80 for s in imu)

    # time: sensor ms → mono ns, monotonic; UTC from $GVGNSTIM (2016-01-23 20:39 UTC)
    for seq in (fixes, imu):
        mono = [m.mono_ns for m in seq]
        assert all(b >= a for a, b in zip(mono, mono[1:]))
    assert fixes[0].fix_utc_ns == 1453581592000000000  # 20:39:52.000 at sensor time 7810 ms
    assert imu[0].mono_ns == 7008 * 10**6 and imu[0].utc_ns == 1453581592000000000 - (7810 - 7008) * 10**6
    span_s = (imu[-1].mono_ns - imu[0].mono_ns) / 1e9
    assert 8 * 60 < span_s < 10 * 60  # "a 9-minute drive"
    assert 9.0 < len(imu) / span_s < 11.0  # 10 Hz
    for it in items[:50]:
        assert it.encode()


@pytest.mark.fixtures
def test_first_samples_match_the_file() -> None:
    with GeniviLogSource(fixture_file(LOG)) as src:
        it = iter(src)
        first = next(it)
    # 7010,0,$GVSNSACC,7008, 0.2394, 0.5375,10.8212,  7.2 and $GVSNSGYR,7008, 1.44,-2.88,-4.97 (yaw,pitch,roll deg/s)
    assert isinstance(first, ImuSample)
    assert first.accel == (0.2394, 0.5375, 10.8212) and first.temperature_c == 7.2
    assert first.gyro == pytest.approx((math.radians(-4.97), math.radians(-2.88), math.radians(1.44)))


def test_malformed_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad.log"
    bad.write_text("#START\n"
                   "0,0$GVGNSVER,4,0,0\n"
                   "100,0,$GVSNSACC,100,0.1,0.2,9.8,20.0,0X0000000F\n"
                   "100,0,$GVSNSACC,100,0.1,0.2\n"
                   "200,0,$GVSNSGYR,200,abc,0,0,20.0,0X0000000F\n"
                   "300,0,$GVXXX,300\n")
    with GeniviLogSource(bad) as src:
        items = list(src)
    assert len(items) == 1 and isinstance(items[0], ImuSample)
    assert math.isnan(items[0].gyro[0])  # an accelerometer line without its gyroscope partner
    assert src.stats.rejected == 3
    with pytest.raises(LogFormatError, match=r"bad.log:4: \$GVSNSACC has 6 fields, expected 9"):
        list(GeniviLogSource(bad, strict=True))
