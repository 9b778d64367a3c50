from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.camera import (
    Camera,
    CameraEndOfStream,
    CameraError,
    CameraSettings,
    CameraTimeout,
    FaultyCamera,
    ReplayCamera,
    V4L2Camera,
    open_camera,
)
from drivers.clock import FakeClock, SystemClock
from drivers.errors import DriverError, VigilError


def _marked(i: int, w: int = 64, h: int = 48) -> np.ndarray:
    """A BGR image whose pixels encode ``i`` (red channel in RGB terms) and a blue stripe."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 2] = 20 * i + 10  # BGR: channel 2 is red
    img[:, :4, 0] = 200  # blue stripe on the left
    return img


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        writer.write(_marked(i))
    writer.release()
    return path


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "stills"
    d.mkdir()
    for i in range(4):
        cv2.imwrite(str(d / f"f{i:03d}.png"), _marked(i))
    return d


def test_video_frames_are_rgb_in_order_and_loop(video: Path) -> None:
    clock = FakeClock()
    with ReplayCamera(video, clock, fps=10, loop=True) as cam:
        assert isinstance(cam, Camera)
        frames = [cam.read(1.0) for _ in range(7)]
    reds = [int(f.image[:, 10:, 0].mean()) for f in frames]
    # MJPEG is lossy: compare to the encoded level with a tolerance
    assert [round((r - 10) / 20) for r in reds] == [0, 1, 2, 3, 4, 0, 1]
    assert frames[0].image[:, :2, 2].mean() > 150  # the blue stripe is in the B channel (RGB)
    assert [f.index for f in frames] == list(range(7))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert cam.describe()["loops"] == 1


def test_realtime_pacing_uses_injected_clock(video: Path) -> None:
    clock = FakeClock(monotonic_start=50.0)
    cam = ReplayCamera(video, clock, fps=4, loop=True)
    cam.start()
    times = [cam.read(1.0).monotonic_s for _ in range(4)]
    assert times == pytest.approx([50.0, 50.25, 50.5, 50.75])
    cam.close()


def test_small_lag_is_caught_up_large_lag_resumes_at_normal_rate(video: Path) -> None:
    clock = FakeClock(monotonic_start=0.0)
    cam = ReplayCamera(video, clock, fps=10, loop=True)
    cam.start()
    cam.read(1.0)
    clock.advance(0.5)  # a slow reader: the missed frames come back to back
    assert [cam.read(1.0).monotonic_s for _ in range(3)] == pytest.approx([0.5, 0.5, 0.5])
    clock.advance(5.0)  # a stall: no burst of 50 frames, the schedule restarts
    times = [cam.read(1.0).monotonic_s for _ in range(3)]
    assert times == pytest.approx([5.5, 5.6, 5.7])
    assert cam.describe()["rebased"] == 1
    cam.close()


def test_timeout_when_next_frame_is_later_than_deadline(video: Path) -> None:
    clock = FakeClock()
    cam = ReplayCamera(video, clock, fps=1, loop=True)
    cam.start()
    cam.read(0.1)
    with pytest.raises(CameraTimeout) as info:
        cam.read(0.1)
    assert isinstance(info.value, TimeoutError) and isinstance(info.value, DriverError)
    # the frame is still delivered once its time has come
    clock.advance(1.0)
    assert cam.read(0.1).index == 1
    cam.close()


def test_no_loop_ends(video: Path) -> None:
    with ReplayCamera(video, FakeClock(), loop=False, realtime=False) as cam:
        for _ in range(5):
            cam.read(1.0)
        with pytest.raises(CameraEndOfStream):
            cam.read(1.0)


def test_folder_skips_and_counts_corrupt_images(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "f001.png").write_bytes(b"\x89PNG garbage")
    (folder / "f002.png").write_bytes(b"")
    with ReplayCamera(folder, FakeClock(), realtime=False, loop=True) as cam:
        frames = [cam.read(1.0) for _ in range(4)]
        info = cam.describe()
    reds = [int(f.image[0, 10, 0]) for f in frames]
    assert reds == [10, 70, 10, 70]
    assert info["corrupt_frames"] == 4
    assert sum("cannot be decoded" in r.message for r in caplog.records) == 1


def test_video_with_a_corrupt_frame_skips_it(video: Path, tmp_path: Path) -> None:
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 1) if data[i] == 0xFF and data[i + 1] == 0xD8]
    assert len(starts) == 5  # one JPEG per frame
    rng = np.random.default_rng(0)
    a, b = starts[2], starts[3] - 40
    data[a:b] = rng.integers(0, 256, b - a, dtype=np.uint8).tobytes()  # garble frame 2
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    with ReplayCamera(bad, FakeClock(), realtime=False, loop=False) as cam:
        frames = []
        with pytest.raises(CameraEndOfStream):
            while True:
                frames.append(cam.read(1.0))
        info = cam.describe()
    levels = [round((int(f.image[:, 10:, 0].mean()) - 10) / 20) for f in frames]
    assert levels == [0, 1, 3, 4]
    assert info["corrupt_frames"] == 1


def test_resizes_to_configured_size(folder: Path) -> None:
    with ReplayCamera(folder, FakeClock(), realtime=False, width=32, height=24) as cam:
        assert cam.read(1.0).image.shape == (24, 32, 3)


def test_all_corrupt_fails_instead_of_spinning(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"nope")
    with ReplayCamera(tmp_path, FakeClock(), realtime=False) as cam, pytest.raises(CameraError):
        cam.read(1.0)


def test_missing_source_is_a_camera_error(tmp_path: Path) -> None:
    with pytest.raises(CameraError) as info:
        ReplayCamera(tmp_path / "absent.avi", FakeClock())
    assert isinstance(info.value, VigilError)


def test_read_before_start_is_an_error(video: Path) -> None:
    cam = ReplayCamera(video, FakeClock())
    with pytest.raises(CameraError):
        cam.read(1.0)


def test_faulty_stall_corrupt_fail(video: Path, tmp_path: Path) -> None:
    clock = FakeClock()
    stall = tmp_path / "stall"
    cam = FaultyCamera(ReplayCamera(video, clock, realtime=False), clock, stall_file=stall)
    with cam:
        assert cam.read(1.0).index == 0
        stall.touch()
        t = clock.monotonic()
        with pytest.raises(CameraTimeout):
            cam.read(2.0)
        assert clock.monotonic() - t == pytest.approx(2.0)
        stall.unlink()
        assert cam.read(1.0).index == 1
        cam.stall(True)
        with pytest.raises(CameraTimeout):
            cam.read(0.5)
        cam.stall(False)
        cam.corrupt_next(1, truncated=True)
        bad = cam.read(1.0)
        assert bad.image.shape == (16, 64, 3)
        cam.fail_next(1)
        with pytest.raises(CameraError):
            cam.read(1.0)
        assert cam.read(1.0).index == 3
        assert cam.describe()["stall_timeouts"] == 2


def test_open_camera_replay_with_stall_file(video: Path, tmp_path: Path) -> None:
    settings = CameraSettings(
        backend="replay",
        source=str(video),
        width=0,
        height=0,
        realtime=False,
        stall_file=str(tmp_path / "stall"),
    )
    with open_camera(settings, FakeClock()) as cam:
        assert isinstance(cam, FaultyCamera)
        assert cam.read(1.0).image.shape == (48, 64, 3)


def test_open_camera_unknown_backend() -> None:
    with pytest.raises(CameraError):
        open_camera(CameraSettings(backend="nope"), FakeClock())  # type: ignore[arg-type]


def test_picamera2_missing_is_clear_error() -> None:
    pytest.importorskip("cv2")
    try:
        import picamera2  # type: ignore[import-not-found]  # noqa: F401

        pytest.skip("picamera2 present on this machine")
    except Exception:  # noqa: BLE001 - any import failure means: not on a Pi
        pass
    with pytest.raises(CameraError, match="picamera2 is not available"):
        open_camera(CameraSettings(backend="picamera2"), FakeClock())


def test_threaded_capture_path_with_a_file(video: Path) -> None:
    cam = V4L2Camera(str(video), SystemClock(), api="any")
    with cam:
        frame = cam.read(2.0)
        assert frame.image.shape == (48, 64, 3)
        # the file ends: three failed grabs turn into a CameraError, not a hang or a timeout
        with pytest.raises(CameraError) as info:
            for _ in range(20):
                cam.read(1.0)
        assert not isinstance(info.value, CameraTimeout)
        assert cam.describe()["grab_failures"] == 3


def test_v4l2_missing_device() -> None:
    cam = V4L2Camera("/dev/video-does-not-exist", SystemClock(), api="v4l2")
    with pytest.raises(CameraError):
        cam.start()


def test_every_backend_has_one_opener() -> None:
    from drivers.camera import BACKENDS, OPENERS

    assert tuple(OPENERS) == BACKENDS
