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
reflectivity) at an azimuth within the defect's reach, and (checked block by block in
``test_every_far_point_is_nebulas_uninterpolated_azimuth``) that each of those is exactly
nebula's uninterpolated azimuth: the raw block azimuth in the packet's last pair (~130 points),
the next pair's raw azimuth in an odd block (~15 points), nothing else.
"""

from __future__ import annotations

import numpy as np
import pytest

from sensors.lidar import RETURN_LAST, RETURN_SECOND, RETURN_STRONGEST
from sensors.lidar.velodyne import VelodyneDecoder
from sensors.lidar.velodyne._models import VLP16
from sensors.packets import open_packet_source
from tests._fixtures import fixture_file

VLP16_BLOCK_S = 110.592e-6  # one block pair (two firing sequences); dual-return pairs fire together
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


def test_every_far_point_is_nebulas_uninterpolated_azimuth(scans, truth):
    """Difference 2 checked exactly, block by block. Each packet of the last scan is decoded
    alone, so each of our returns knows its block pair (from its firing time) and the raw
    azimuths of its packet. Every ground-truth point more than 2 cm from ours is one of:
    - a return of the packet's last pair (blocks 10/11), where nebula's azimuth is the raw
      block azimuth exactly: no advance with firing time (the manual's interpolation, which
      we and velodyne_decoder do, moves the 32 firings of a block over ~0.4 degree);
    - a return of an odd block (strongest, or second when the last is strongest), where nebula's azimuth is the raw azimuth plus one
      pair's step (0.4 degree), again without advancing with firing time.
    Nothing else is more than 2 cm off (the issue's 99.5 % target holds for every point
    nebula does not mis-place: 100 % of them), and the last returns of the first four pairs
    agree to 2 cm for at least 99.9 % of points."""
    import struct

    scan = scans[-1]
    with open_packet_source(fixture_file("lidar/velodyne/vlp16_rosbag2")) as src:
        packets = list(src)
    first = sum(s.packets for s in scans[:-1]) - 3  # and a few before: nebula cuts by point
    laser_of_ring = np.argsort(VLP16.rings())
    cols = []
    for p in packets[first : first + 3 + scan.packets]:
        dec = VelodyneDecoder(time_source="host", model="VLP-16")
        raw = np.array([struct.unpack_from("<H", p.data, 100 * b + 2)[0] / 100.0 for b in range(12)])
        for s in list(dec.feed([p])) + list(dec.flush()):
            pair = np.floor((s.time - p.timestamp) / VLP16_BLOCK_S + 1e-6).astype(np.int64)
            zc = s.z - VLP16.z_offset_m[laser_of_ring][s.ring]
            cols.append(np.c_[s.x, s.y, zc, s.ring, s.intensity, s.azimuth, s.return_type, pair,
                              raw[2 * pair], raw[np.minimum(2 * pair + 2, 10)]])
    ours = np.concatenate(cols)
    gt = np.c_[truth["x"], truth["y"], truth["z"]].astype(np.float64)
    dist, idx = _nearest(gt, ours[:, :3])
    rng = np.linalg.norm(ours[:, :3], axis=1)
    gt_az = np.degrees(truth["azimuth"].astype(np.float64)) % 360.0

    def wrap(a):
        return (a + 180.0) % 360.0 - 180.0

    last_pair, odd_block = np.zeros(len(gt), bool), np.zeros(len(gt), bool)
    for i in np.flatnonzero(dist >= 0.02):
        same = (ours[:, 3] == truth["channel"][i]) & (ours[:, 4] == truth["intensity"][i])
        same &= np.abs(rng - truth["distance"][i]) < 0.0011
        cand = np.flatnonzero(same)
        assert cand.size, truth[i]
        j = cand[np.argmin(np.abs(wrap(ours[cand, 5] - gt_az[i])))]
        pair, own_raw, next_raw = int(ours[j, 7]), ours[j, 8], ours[j, 9]
        if pair == 5 and abs(wrap(gt_az[i] - own_raw)) < 0.005:
            last_pair[i] = True
        elif int(ours[j, 6]) & (RETURN_STRONGEST | RETURN_SECOND) and abs(wrap(gt_az[i] - next_raw)) < 0.025:
            odd_block[i] = True
        else:
            raise AssertionError(f"ground-truth point {i} is {dist[i] * 100:.1f} cm off, unexplained: {truth[i]}")
    assert last_pair.sum() > 100 and odd_block.sum() > 5  # the defect is there, and it is all there is
    # what the literal target would be against a nebula without the defect: every remaining
    # point is within 2 cm (the loop above raised otherwise), so the share is exactly this
    defect = last_pair | odd_block
    assert (len(gt) - defect.sum()) / len(gt) >= 0.99 and (dist[~defect] < 0.02).all()
    # last returns (even blocks) away from the packet's last pair: nebula and we agree
    even_early = (ours[idx, 7] < 4) & (ours[idx, 6].astype(np.int64) & RETURN_LAST > 0)
    assert even_early.sum() > 9000 and (dist[even_early] < 0.02).mean() >= 0.999
