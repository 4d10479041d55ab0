"""Generator settings (one frozen dataclass) and the generator's error type."""
from __future__ import annotations

from dataclasses import dataclass

from flowgrad.errors import InputError
from flowgrad.spatial.geometry import GeometryError, check_positions

# Urbansas ships its videos at these rates besides the native one; boxes are at 2 fps.
LOW_RATES = (8, 2)
ANNOTATION_FPS = 2


class SynthError(InputError):
    """A bad generator argument or output directory, described in one line."""


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a generated clip except the seed.

    width, height: written frame size in pixels (even numbers: H.264 yuv420p).
    seconds: clip length in seconds. fps: rate of the main video in frames/s
    (the 8 and 2 fps versions are always written too). audio_rate: Hz of the
    wav and of the mp4's AAC track. The fractions are per-clip probabilities
    in [0, 1] of night lighting, camera shake, an off-screen vehicle sound and
    a traffic light that stops a sounding vehicle; and (listening.py) of silent
    movers, busy traffic, a quiet stretch, and parked vehicles being shown.
    shake_amplitude: largest amplitude of a shaken clip's translation, % of the width (each
    shaken clip draws its own between half of it and it; 0.8 = 0.4 to 0.8 %, about 2.6 to 5 px at 640 px).
    busy_loud: how many vehicles in the picture of a busy clip may keep their engine
    sound (1 or 2; the others are electric). ambience: level of the wind, birds and voices
    mixed under every clip (1 = the default level, 0 = none). mic_positions_m: the
    microphones, ``((x, y, z), ...)`` metres in camera coordinates (x right, y down, z
    forward; at least two, spread along x): the wav has one channel per microphone
    (default: a 20 cm pair along x centred on the camera, ``--array stereo:0.2``).
    """

    width: int = 640
    height: int = 360
    seconds: float = 10.0
    fps: int = 24
    audio_rate: int = 48000
    night_fraction: float = 0.2
    shake_fraction: float = 0.2
    shake_amplitude: float = 0.8
    offscreen_fraction: float = 0.5
    light_fraction: float = 0.5
    silent_fraction: float = 0.4
    busy_fraction: float = 0.2
    quiet_fraction: float = 0.2
    busy_loud: int = 2
    parked_fraction: float = 0.7
    ambience: float = 1.0
    mic_positions_m: tuple = ((-0.1, 0.0, 0.0), (0.1, 0.0, 0.0))

    def __post_init__(self) -> None:
        if not (64 <= self.width <= 3840 and 64 <= self.height <= 2160):
            raise SynthError(f"size {self.width}x{self.height} is out of range: use 64x64 .. 3840x2160")
        if self.width % 2 or self.height % 2:
            raise SynthError(f"size {self.width}x{self.height}: width and height must be even (H.264 yuv420p)")
        if not 0.5 <= self.seconds <= 120:
            raise SynthError(f"seconds={self.seconds}: use 0.5 .. 120 "
                             "(at least one 2 fps frame; a whole clip's audio is held in memory)")
        if not 1 <= self.fps <= 120:
            raise SynthError(f"fps={self.fps}: use 1 .. 120")
        if not 16000 <= self.audio_rate <= 96000:
            raise SynthError(f"audio rate {self.audio_rate} Hz: use 16000 .. 96000")
        for name in ("night_fraction", "shake_fraction", "offscreen_fraction", "light_fraction",
                     "silent_fraction", "busy_fraction", "quiet_fraction", "parked_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise SynthError(f"{name}={value}: must be in [0, 1]")
        if isinstance(self.busy_loud, bool) or self.busy_loud not in (1, 2):
            raise SynthError(f"busy_loud={self.busy_loud!r}: use 1 or 2 (loud vehicles in a busy clip)")
        if not 0.0 < self.shake_amplitude <= 10.0:
            raise SynthError(f"shake_amplitude={self.shake_amplitude}: use a percentage of the width in (0, 10]")
        if not 0.0 <= self.ambience <= 10.0:
            raise SynthError(f"ambience={self.ambience}: use 0 (none) .. 10 (1 is the default level)")
        try:
            mics = check_positions(self.mic_positions_m)
        except GeometryError as e:
            raise SynthError(f"mic_positions_m: {e}") from None
        # Plain tuples of floats: hashable, and synth.json records them as written.
        object.__setattr__(self, "mic_positions_m", tuple(tuple(float(c) for c in m) for m in mics))

    @property
    def video_rates(self) -> tuple[int, ...]:
        """Frame rates written (frames/s), highest first, without repeats."""
        return tuple(sorted({self.fps, *LOW_RATES}, reverse=True))
