"""Command line: ``python -m training.synth --out DIR --clips N --seed S [options]``."""
from __future__ import annotations

import argparse
import sys

from flowgrad.errors import InputError, one_line
from flowgrad.sizes import wxh_arg
from flowgrad.spatial.geometry import DEFAULT_HFOV_DEG, GeometryError, parse_mics

from .config import SynthConfig
from .generate import generate

_PROG = "python -m training.synth"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{_PROG}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The CLI's argument parser."""
    p = _Parser(prog=_PROG, description=(
        "Write seeded synthetic street-scene clips in the Urbansas layout: H.264 mp4 at the main fps "
        "(with AAC stereo audio: microphones 0 and 1) and at 8 and 2 fps, a 16-bit wav with one channel per "
        "microphone of --array (each source heard with its propagation delay), video/audio annotation CSVs "
        "(boxes = sounding vehicles only), annotations/array.json and azimuths.json (every sounding "
        "vehicle's true direction per 2 fps time), synth.json and README.md. Scenes contain moving and "
        "traffic-light-stopped vehicles (sounding), parked vehicles, trees and pedestrians (silent), "
        "optional night lighting, camera shake and off-screen vehicle sounds; silent movers (cyclists, "
        "e-scooters, electric cars), busy traffic with one or two loud vehicles and quiet stretches with only "
        "ambience (wind, birds, voices). annotations/cases.json gives each 2 fps time its evaluation case."))
    p.add_argument("--out", required=True, help="output directory (must be empty unless --overwrite)")
    p.add_argument("--clips", type=int, required=True, help="number of clips (>= 1)")
    p.add_argument("--seed", type=int, required=True, help="random seed (>= 0); same seed, same clips")
    p.add_argument("--size", type=wxh_arg(), default=(360, 640), metavar="WxH", dest="size_hw",
                   help="frame width x height in pixels (default 640x360)")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length in seconds (default 10)")
    p.add_argument("--fps", type=int, default=24, help="main video frame rate (default 24)")
    p.add_argument("--audio-rate", type=int, default=48000, help="audio sample rate in Hz (default 48000)")
    p.add_argument("--night-fraction", type=float, default=0.2, help="probability of a night clip (default 0.2)")
    p.add_argument("--shake-fraction", type=float, default=0.2, help="probability of camera shake (default 0.2)")
    p.add_argument("--shake-amplitude", type=float, default=0.8, metavar="PERCENT",
                   help="largest shake amplitude, %% of the frame width; each shaken clip draws its own between "
                        "half of it and it (default 0.8)")
    p.add_argument("--offscreen-fraction", type=float, default=0.5,
                   help="probability of an off-screen vehicle sound (default 0.5)")
    p.add_argument("--light-fraction", type=float, default=0.5,
                   help="probability of a traffic light stopping a sounding vehicle (default 0.5)")
    p.add_argument("--silent-fraction", type=float, default=0.4,
                   help="probability of 1-2 silent movers: cyclists, e-scooters, electric cars (default 0.4)")
    p.add_argument("--busy-fraction", type=float, default=0.2,
                   help="probability of busy traffic: several vehicles move, at most --busy-loud of them sound, "
                        "the rest are electric (default 0.2)")
    p.add_argument("--busy-loud", type=int, choices=(1, 2), default=2,
                   help="how many vehicles in the picture of a busy clip may sound: 1 = exactly one loud vehicle "
                        "among silent movers, 2 = one or two (default 2)")
    p.add_argument("--quiet-fraction", type=float, default=0.2,
                   help="probability of a quiet stretch (30-50%% of the clip) without vehicle sound near the "
                        "camera: ambience only, or an off-screen vehicle (default 0.2)")
    p.add_argument("--parked-fraction", type=float, default=0.7,
                   help="probability that a clip shows its parked (silent) vehicles (default 0.7)")
    p.add_argument("--ambience", type=float, default=1.0,
                   help="level of the synthesised wind, birds and voices under every clip; 0 = none (default 1)")
    p.add_argument("--array", default="stereo:0.2", metavar="PRESET|FILE",
                   help="the microphones: stereo:D (a pair D m apart along x), square:D (4 microphones on a D m "
                        "square facing the scene) or a JSON file of the --mics format of run_live "
                        "({\"mic_positions_m\": [[x, y, z], ...]}, metres, x right, y down, z forward); a file's "
                        "hfov_deg is not used: the synth camera's field of view follows from its picture and "
                        "is what annotations/array.json records (default stereo:0.2)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous run's outputs in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 write failure, 2 bad arguments)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        mics = parse_mics(args.array, DEFAULT_HFOV_DEG).mic_positions_m  # the hfov is the synth camera's
    except GeometryError as e:  # its messages name --mics, the option's name elsewhere
        parser.error(one_line(e).replace("--mics", "--array"))
    try:
        config = SynthConfig(width=args.size_hw[1], height=args.size_hw[0], seconds=args.seconds, fps=args.fps,
                             audio_rate=args.audio_rate, night_fraction=args.night_fraction,
                             shake_fraction=args.shake_fraction, shake_amplitude=args.shake_amplitude,
                             offscreen_fraction=args.offscreen_fraction,
                             light_fraction=args.light_fraction, silent_fraction=args.silent_fraction,
                             busy_fraction=args.busy_fraction, busy_loud=args.busy_loud,
                             quiet_fraction=args.quiet_fraction,
                             parked_fraction=args.parked_fraction, ambience=args.ambience,
                             mic_positions_m=tuple(map(tuple, mics)))
        infos = generate(args.out, args.clips, args.seed, config, overwrite=args.overwrite, progress=True)
    except InputError as e:  # SynthError: a bad argument or output directory
        parser.error(one_line(e))
    except OSError as e:
        print(f"{_PROG}: error: cannot write {args.out}: {e}", file=sys.stderr)
        return 1
    print(f"wrote {len(infos)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
