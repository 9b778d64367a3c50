"""The engine's command-line options, shared by ``vigil read`` and ``vigil eval``.

Both read still photos the same way by default (``PlateEngine.load_still``); ``--frames`` reads
them as the daemon reads its camera's frames, one frame at a time (no plate map, no text-line
fallback, no windows, the detector's frame settings, at most :data:`FRAME_MAX_PLATES` plates),
which is how the daemon's per-frame accuracy is measured. The three ``--no-*`` switches turn
single still-photo passes off and keep the rest of the photo mode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from inference.engine import COUNTRIES, STILL_MAX_PLATES, EngineSettings, PlateEngine

FRAME_MAX_PLATES = EngineSettings().max_plates


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--country", choices=COUNTRIES, default="auto",
                        help="prefer this country's plate formats (default: auto)")
    parser.add_argument("--top-n", type=int, default=10, help="OCR candidates per plate (1-50)")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads per model")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="models folder (default: the installed inference/models)")
    parser.add_argument("--frames", action="store_true",
                        help="read each image as the daemon reads a camera frame: no plate map, "
                             "no text-line fallback, no windows, at most "
                             f"{FRAME_MAX_PLATES} plates unless --max-plates says otherwise")
    parser.add_argument("--no-text-fallback", dest="text_fallback", action="store_false",
                        help="do not read the text detector's lines where the plate detector "
                             "finds nothing legible (default: read them)")
    parser.add_argument("--no-plate-map", dest="plate_map", action="store_false",
                        help="do not look for plates with the plate map too (about 30-100 ms "
                             "a photo; default: look)")
    parser.add_argument("--no-tiles", dest="tiles", action="store_false",
                        help="do not look at photos in windows too: over 1920x1152 at half "
                             "size, smaller ones the detector sees shrunk at native pixels "
                             "(default: look)")
    parser.add_argument("--no-small-reader", dest="small_reader", action="store_false",
                        help="read small plates and two-row plates' rows with the main reader "
                             "too (default: with the small-plate reader, where the models "
                             "folder holds one)")
    parser.add_argument("--max-plates", type=int, default=None, metavar="N",
                        help=f"plates read per image or frame, 1-64 (default {STILL_MAX_PLATES}"
                             f", {FRAME_MAX_PLATES} with --frames)")


def load_engine(args: argparse.Namespace) -> PlateEngine:
    """The engine the parsed options ask for. Raises what :meth:`PlateEngine.load` raises."""
    photos = not args.frames
    max_plates = args.max_plates
    if max_plates is None:
        max_plates = STILL_MAX_PLATES if photos else FRAME_MAX_PLATES
    return PlateEngine.load(
        args.model_dir,
        threads=args.threads,
        top_n=args.top_n,
        country=args.country,
        text_fallback=photos and args.text_fallback,
        plate_map=photos and args.plate_map,
        tiles=photos and args.tiles,
        max_plates=max_plates,
        photos=photos,
        small_reader=photos and args.small_reader,
    )
