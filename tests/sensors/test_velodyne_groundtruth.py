"""The last scan of the VLP-16 ROS 2 bag against the tier4/nebula driver's decoding of it.

What differs between nebula's cloud and ours, and why (found by decoding the bag and reading
nebula's ``vlp16_decoder.cpp``); the axes are the same (x forward, y left, z up, azimuth
clockwise), so no frame transform is involved:

1. **Vertical correction (calibration, not convention).** The VLP-16 manual gives each laser
   a vertical offset (+11.2 mm for the -15 degree laser ... -11.2 mm for +15 degrees) to add to
   z; we (and velodyne_decoder 3.1) apply it, nebula's default VLP-16 calibration has none.
   This makes z differ by up to 11.2 mm per ring, constant along the ring.
2. **Dual-return azimuths (a nebula defect).** The bag is dual-return: blocks come in pairs
   sharing one azimuth. Nebula's loop reads the "next" azimuth two blocks ahead and reuses it as
   the next block's own azimuth, so odd (strongest-return) blocks take the following pair's
   azimuth without interpolation, and block 10 is not interpolated at all (azimuth step 0).
   Those returns are off by up to 0.6 degree (3 to 6 cm at the ranges in this scan). We
   interpolate every return by its firing time as the manual says, with the packet's mean
   azimuth rate (as velodyne_decoder does). Nebula interpolates with each block pair's own
   azimuth step, which jitters by +-0.02 degree around the mean: a few millimetres at 10 m
   for a quarter of the points (which is why only ~75 % agree to 0.5 mm).
3. **Equal reflectivity in a dual pair.** Nebula then calls the nearer return the strongest,
   we give the flag to the last return (the manual reports the second strongest in the other
   block when the last is the strongest); only ties differ.
4. ``elevation`` in nebula's PCD holds the sine of the elevation (it stores
   ``sin_vert_correction``); its ``channel`` is the ring (0 = lowest beam), like ours.

So the issue's literal target (99.5 % of ground-truth points within 2 cm) is not reached
with or without removing difference 1: about 1 % of nebula's points sit where its azimuth
defect puts them. The test checks what can be checked honestly: the counts, that every other
point agrees to well under a millimetre once the documented z calibration is taken out, and
that each point off by more than 2 cm is a return we decoded too (same ring and range, same
reflectivity) at an azimuth within the defect's reach.
"""

from __future__ import annotations

import numpy as np
import pytest

from sensors.lidar import RETURN_LAST, RETURN_SECOND, RETURN_STRONGEST
from sensors.lidar.velodyne import VelodyneDecoder
from sensors.lidar.velodyne._models import VLP16
from sensors.packets import open_packet_source
from tests._fixtures import fixture_file

_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("U", 1): "u1", ("U", 2): "<u2", ("U", 4): "<u4",
              ("I", 1): "i1", ("I", 2): "<i2", ("I", 4): "<i4"}


def read_binary_pcd(path) -> np.ndarray:
    """A binary PCD file as a structured array (fields, sizes and types from its header)."""
    raw = path.read_bytes()
    marker = raw.index(b"\nDATA ") + 1
    end = raw.index(b"\n", marker) + 1
    header = {}
    for line in raw[:end].decode("ascii").splitlines():
        if line and not line.startswith("#"):
            key, *vals = line.split()
            header[key] = vals
    assert header["DATA"] == ["binary"]
    dtype = np.dtype([(n, _PCD_TYPES[(t, int(s))])
                      for n, t, s in zip(header["FIELDS"], header["TYPE"], header["SIZE"])])
    n = int(header["POINTS"][0])
    return np.frombuffer(raw[end : end + n * dtype.itemsize], dtype=dtype)


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o3d = pytest.importorskip("open3d")
    nns = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(np.ascontiguousarray(b, dtype=np.float64)))
    nns.knn_index()
    idx, d2 = nns.knn_search(o3d.core.Tensor(np.ascontiguousarray(a, dtype=np.float64)), 1)
    return np.sqrt(d2.numpy()[:, 0]), idx.numpy()[:, 0]


@pytest.fixture(scope="module")
def scans():
    with open_packet_source(fixture_file("lidar/velodyne/vlp16_rosbag2")) as src:
        dec = VelodyneDecoder()
        out = list(dec.feed(src)) + list(dec.flush())
    assert dec.stats.bad_packets == 0 and dec.model == "VLP-16"
    return out


@pytest.fixture(scope="module")
def truth():
    return read_binary_pcd(fixture_file("lidar/velodyne/vlp16_rosbag2_ground_truth.pcd"))


def test_reads_the_pcd(truth):
    assert len(truth) == 14831
    assert truth.dtype.names[:3] == ("x", "y", "z")
    # nebula's 'elevation' field is the sine of the beam elevation (difference 4)
    assert np.isclose(truth["elevation"].max(), np.sin(np.radians(15.0)), atol=1e-4)


def test_last_scan_against_nebula(scans, truth):
    scan = scans[-1]
    assert scan.packets == 150  # one bag message's worth: the bag was cut at 0 degrees too
    assert abs(len(scan) - len(truth)) <= 0.01 * len(truth)

    gt = np.c_[truth["x"], truth["y"], truth["z"]].astype(np.float64)
    # As decoded, no transform at all.
    dist, _ = _nearest(gt, scan.xyz)
    assert (dist < 0.02).mean() >= 0.985
    assert (dist < 0.05).mean() >= 0.999
    assert np.median(dist) < 0.008

    # Without the manual's per-laser vertical correction (difference 1), everything but the
    # returns nebula mis-places agrees to a fraction of a millimetre.
    laser_of_ring = np.argsort(VLP16.rings())
    z_off = VLP16.z_offset_m[laser_of_ring][scan.ring]
    ours = np.c_[scan.x, scan.y, scan.z - z_off]
    dist, idx = _nearest(gt, ours)
    assert np.median(dist) < 1e-4
    assert (dist < 0.0005).mean() >= 0.72
    assert (dist < 0.02).mean() >= 0.988

    # Every ground-truth point off by more than 2 cm is a return we have too: same ring, same
    # range (2 mm counts) and reflectivity, at most 0.65 degree away in azimuth (difference 2).
    # Nebula cuts at 0 degrees point by point, we cut by packet (as velodyne_decoder): the
    # dozen returns just past 0 degrees that nebula keeps are in our previous scan.
    far = np.flatnonzero(dist >= 0.02)
    assert len(far) < 0.012 * len(truth)
    both = [scans[-2], scan]
    ring = np.concatenate([s.ring for s in both])
    inten = np.concatenate([s.intensity for s in both])
    azim = np.concatenate([s.azimuth for s in both])
    rng = np.concatenate([
        np.linalg.norm(np.c_[s.x, s.y, s.z - VLP16.z_offset_m[laser_of_ring][s.ring]], axis=1) for s in both
    ])
    gt_az = np.degrees(truth["azimuth"].astype(np.float64))
    for i in far:
        same = (ring == truth["channel"][i]) & (np.abs(rng - truth["distance"][i]) < 0.0011)
        same &= inten == truth["intensity"][i]
        daz = np.abs((azim[same] - gt_az[i] + 180.0) % 360.0 - 180.0)
        assert daz.size and daz.min() < 0.65, (i, truth[i])


def test_return_types_against_nebula(scans, truth):
    """Nebula names a dual pair by range ("first" = farther) and strength; ours: LAST is the
    farther one, STRONGEST the stronger, SECOND the weaker of a pair whose last is strongest."""
    scan = scans[-1]
    laser_of_ring = np.argsort(VLP16.rings())
    ours = np.c_[scan.x, scan.y, scan.z - VLP16.z_offset_m[laser_of_ring][scan.ring]]
    gt = np.c_[truth["x"], truth["y"], truth["z"]].astype(np.float64)
    dist, idx = _nearest(gt, ours)
    exact = dist < 0.001
    ours_rt = scan.return_type[idx][exact]
    theirs = truth["return_type"][exact]
    identical, first_weak, last_weak, first_strongest, last_strongest = 6, 4, 5, 9, 10
    expect = {
        identical: RETURN_LAST | RETURN_STRONGEST,
        first_strongest: RETURN_LAST | RETURN_STRONGEST,
        first_weak: RETURN_LAST,
        last_strongest: RETURN_STRONGEST,
        last_weak: RETURN_SECOND,
    }
    agree = np.array([expect[int(t)] == int(o) for t, o in zip(theirs, ours_rt)])
    assert np.all(agree[theirs == identical])
    # the rest differ only where both returns of a pair have the same reflectivity (difference 3)
    assert agree.mean() > 0.995
    assert (theirs != identical).sum() > 100  # the comparison is not empty
