"""Simulated sensor outputs as bus messages (the agent's message types)."""

from __future__ import annotations

from collections.abc import Iterator

from sensors.simulator._drive import DriveSimulation, Fix, Frame, Imu, Power, SimEvent

LIDAR_SOURCE = "lidar0"
GNSS_SOURCE = "gnss0"
IMU_SOURCE = "imu0"
MCU_SOURCE = "mcu"


def to_message(sim: DriveSimulation, ev: SimEvent):  # type: ignore[no-untyped-def]
    """The bus message for one simulated output."""
    from agent.bus.messages import (
        CameraFrame,
        FixType,
        GnssFix,
        ImuSample,
        LidarPacket,
        NmeaSentence,
        PowerEvent,
        PowerEventKind,
    )

    utc_ns = int(round(ev.t * 1e9))
    head = {"utc_ns": utc_ns, "mono_ns": sim.mono_ns(ev.t)}
    p = ev.payload
    if ev.kind == "lidar":
        return LidarPacket(source=LIDAR_SOURCE, port=p.port, data=p.data, **head)
    if ev.kind == "nmea":
        return NmeaSentence(source=GNSS_SOURCE, text=p, **head)
    if ev.kind == "fix":
        f: Fix = p
        return GnssFix(
            source=GNSS_SOURCE,
            lat_deg=f.lat,
            lon_deg=f.lon,
            alt_m=f.alt_msl,
            fix_type=FixType(f.fix_quality),
            hdop=f.hdop,
            num_sats=f.sats,
            speed_mps=f.speed_mps,
            course_deg=f.course_deg,
            geoid_sep_m=f.geoid_sep,
            fix_utc_ns=int(round(f.epoch * 1e9)),
            h_std_m=0.02,
            v_std_m=0.03,
            **head,
        )
    if ev.kind == "imu":
        s: Imu = p
        return ImuSample(source=IMU_SOURCE, gyro=s.gyro, accel=s.accel, temperature_c=35.0, **head)
    if ev.kind == "camera":
        c: Frame = p
        return CameraFrame(
            source=c.camera_id,
            camera_id=c.camera_id,
            width=c.width,
            height=c.height,
            jpeg=c.jpeg,
            frame_index=c.index,
            **head,
        )
    if ev.kind == "power":
        pw: Power = p
        return PowerEvent(
            source=MCU_SOURCE,
            kind=PowerEventKind[pw.kind.upper()],
            ignition=pw.ignition,
            supply_v=pw.supply_v,
            **head,
        )
    raise ValueError(f"unknown simulated event kind {ev.kind!r}")  # pragma: no cover


def bus_messages(sim: DriveSimulation) -> Iterator:  # type: ignore[type-arg]
    """Every output of ``sim`` as a bus message, in time order."""
    for ev in sim.events():
        yield to_message(sim, ev)
