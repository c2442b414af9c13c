"""The ``affcore`` command line. Every command prints one readable line and exits non-zero
on bad input; ``--debug`` shows the traceback instead."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import warnings
from pathlib import Path


class CommandError(Exception):
    """A user-facing error from a command: printed as one line."""


def _write_json(path: str, payload) -> None:
    from ._jobs import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode(), fsync=False)


def _cmd_fit(args) -> int:
    from .fitting import fit
    from .images import read_image, write_image
    from .landmarks import load_landmarks
    from .model import load_model

    model = load_model(args.model)
    image = read_image(args.photo)
    landmarks = load_landmarks(args.landmarks) if args.landmarks else None
    result = fit(image, landmarks=landmarks, model=model)
    payload = result.to_json()
    payload["image"] = str(args.photo)
    payload["image_size"] = [int(image.shape[1]), int(image.shape[0])]
    if args.json:
        _write_json(args.json, payload)
    if args.overlay:
        from .overlay import draw_fit

        write_image(args.overlay, draw_fit(image, result, model))
    if not args.json or args.verbose:
        print(f"{args.photo}: rms {result.rms_px:.2f} px ({result.rms_iod:.4f} IOD), yaw {result.yaw:+.1f}, "
              f"pitch {result.pitch:+.1f}, roll {result.roll:+.1f} deg, {result.iterations} iterations, "
              f"{result.time_ms:.2f} ms")
    return 0


def _parse_va(text: str):
    try:
        v, a = (float(x) for x in text.split(","))
    except ValueError:
        raise CommandError(f"--va: expected 'V,A' such as '0.5,-0.2', got {text!r}") from None
    return v, a


def _synthesis_targets(args) -> list[tuple[str, dict]]:
    """(file-name suffix, keyword arguments of Synthesizer.render) for each requested target."""
    from . import affect

    if args.all:
        return [(name, {"expression": name, "intensity": args.intensity}) for name in affect.EXPRESSIONS]
    if args.expression:
        affect.expression_blendshapes(args.expression, args.intensity)  # validates name and intensity
        suffix = args.expression if args.intensity == 1.0 else f"{args.expression}_{args.intensity:.2f}"
        return [(suffix, {"expression": args.expression, "intensity": args.intensity})]
    if args.aus:
        aus = affect.parse_aus(args.aus)
        affect.aus_to_blendshapes(aus)
        return [("_".join(f"{k}-{v:.2f}" for k, v in aus.items()), {"aus": aus})]
    v, a = _parse_va(args.va)
    affect.va_to_blendshapes(v, a)
    return [(f"va_{v:+.2f}_{a:+.2f}", {"va": (v, a)})]


def _cmd_synthesize(args) -> int:
    from tqdm import tqdm

    from .images import read_image, write_image
    from .landmarks import load_landmarks
    from .model import load_model
    from .sequence import face_crop_box
    from .sheet import contact_sheet
    from .synthesis import Synthesizer

    targets = _synthesis_targets(args)
    if args.landmarks and len(args.photos) != 1:
        raise CommandError("--landmarks applies to a single photo")
    model = load_model(args.model)
    shading = _load_shading(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failures = 0
    bar = tqdm(total=len(args.photos) * len(targets), unit="face", disable=args.quiet or len(args.photos) * len(targets) < 2)
    for photo in args.photos:
        stem = Path(photo).stem
        try:
            image = read_image(photo)
            lm = load_landmarks(args.landmarks) if args.landmarks else None
            synth = Synthesizer(image, landmarks=lm, model=model, keep_resting_face=not args.replace_expression,
                                shading=shading, relight=False if args.no_relight else None)
            rendered, names = [], []
            for suffix, kwargs in targets:
                img = synth.render(**kwargs)
                write_image(out / f"{stem}_{suffix}.png", img)
                rendered.append(img)
                names.append(suffix)
                bar.update(1)
            if args.all:
                box = face_crop_box(synth.fit.landmarks, image.shape)  # the face, large enough to see
                write_image(out / f"{stem}_sheet.png",
                            contact_sheet([image] + rendered, ["original"] + names, box=box))
        except (ValueError, OSError) as e:
            failures += 1
            # image errors already start with the file's name
            message = str(e) if str(e).startswith(str(photo)) else f"{photo}: {e}"
            bar.write(f"affcore synthesize: {message}", file=sys.stderr)
    bar.close()
    if not args.quiet:
        n = (len(args.photos) - failures) * len(targets)
        print(f"wrote {n} image{'' if n == 1 else 's'} to {out}"
              + (f"; {failures} photo(s) failed" if failures else ""))
    return 1 if failures else 0


def _load_shading(args):
    """The expression shading of ``--shading``, or None."""
    if not args.shading:
        return None
    from .shading import load_expression_shading

    return load_expression_shading(args.shading)


def _photo_synthesizer(args):
    """The Synthesizer of ``args.photo`` with the options of :func:`_add_photo_options`."""
    from .images import read_image
    from .landmarks import load_landmarks
    from .model import load_model
    from .synthesis import Synthesizer

    image = read_image(args.photo)
    lm = load_landmarks(args.landmarks) if args.landmarks else None
    return Synthesizer(image, landmarks=lm, model=load_model(args.model), shading=_load_shading(args),
                       relight=False if args.no_relight else None)


def _add_photo_options(parser) -> None:
    parser.add_argument("photo", help="photo of a (preferably neutral) face")
    parser.add_argument("--landmarks", help="68-point landmarks instead of detection")
    parser.add_argument("--model", help="path to ict_face_model.npz")
    _add_shading_options(parser)
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")


def _add_shading_options(parser) -> None:
    parser.add_argument("--shading", metavar="FILE.npz",
                        help="expression shading (skin folds and furrows) made by 'affcore shading build'")
    parser.add_argument("--no-relight", action="store_true",
                        help="keep the photo's shading on the moved skin (default: without --shading the lower "
                             "face is relit under the photo's light as the target bends it)")


def _cmd_shading_build(args) -> int:
    from .model import load_model
    from .shading import DEFAULT_STRENGTH, build_expression_shading, read_labelled_photos, save_expression_shading

    photos = read_labelled_photos(args.labels, args.images)
    strength = DEFAULT_STRENGTH if args.strength is None else args.strength
    shading = build_expression_shading(photos, model=load_model(args.model), min_people=args.min_people,
                                       strength=strength, progress=not args.quiet)
    out = save_expression_shading(shading, args.out)
    if not args.quiet:
        print(f"wrote {out}: " + ", ".join(f"{e} ({n} people)" for e, n in zip(shading.expressions, shading.people)))
    return 0


def _cmd_sequence(args) -> int:
    from . import affect
    from .images import write_image
    from .sequence import blink_weights, check_sequence_output, iter_va, path_plot, write_sequence

    corners = affect.parse_va_path(args.path)
    points = affect.va_path(corners, args.frames)
    check_sequence_output(args.out, args.fps)  # before the fit and the frames, not after
    blinks = blink_weights(len(points), args.fps, args.blinks, seed=args.seed) if args.blinks else None
    synth = _photo_synthesizer(args)
    # frames go to the writer as they are rendered: a long path never holds them all in memory
    out = write_sequence(iter_va(synth, points, progress=not args.quiet, blinks=blinks), args.out, args.fps)
    plot = (out.with_name(out.stem + "_path.png") if out.suffix else out / "path.png")
    write_image(plot, path_plot(corners, points))
    if not args.quiet:
        print(f"wrote {len(points)} frames to {out} and the path plot to {plot}")
    return 0


def _cmd_vaplane(args) -> int:
    from .images import write_image
    from .sequence import va_plane_picture

    synth = _photo_synthesizer(args)
    write_image(args.out, va_plane_picture(synth, args.grid, args.tile, progress=not args.quiet))
    if not args.quiet:
        print(f"wrote {args.out}")
    return 0


def _cmd_model_import(args) -> int:
    from .model import import_obj_folder, load_model

    out = import_obj_folder(args.path, args.dest)
    m = load_model(out)
    print(f"wrote {out}: {m.num_vertices} vertices, {m.num_identity} identity modes, "
          f"{m.num_expression} expressions")
    return 0


def _cmd_model_info(args) -> int:
    from .model import load_model, model_search_path

    try:
        m = load_model(args.model)
    except FileNotFoundError as e:
        print("searched: " + ", ".join(str(p) for p in model_search_path(args.model)))
        raise CommandError(str(e)) from None
    print(f"{m.path}: {m.num_vertices} vertices, {len(m.triangles)} triangles, {m.num_identity} identity modes, "
          f"{m.num_expression} expressions")
    return 0


def _cmd_info(args) -> int:
    from . import __version__, build_info

    print(json.dumps({"version": __version__, **build_info()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="affcore", description="Facial-affect synthesis from one photo.")
    p.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    f = sub.add_parser("fit", help="fit the 3D face model to the face in a photo")
    f.add_argument("photo", help="image file (JPEG, PNG, ...)")
    f.add_argument("--landmarks", help="68-point landmarks (.pts, .npy, .json, text) instead of detection")
    f.add_argument("--json", metavar="OUT.json", help="write the fit (landmarks, pose, weights, errors) as JSON")
    f.add_argument("--overlay", metavar="OUT.png", help="write the photo with landmarks and the fitted mesh")
    f.add_argument("--model", help="path to ict_face_model.npz (default: see 'affcore model info')")
    f.add_argument("-v", "--verbose", action="store_true", help="also print a summary line with --json")
    f.set_defaults(func=_cmd_fit)

    s = sub.add_parser("synthesize", help="make a photo's face show an expression, action units or a VA point")
    s.add_argument("photos", nargs="+", metavar="PHOTO", help="photos of (preferably neutral) faces")
    target = s.add_mutually_exclusive_group(required=True)
    target.add_argument("--expression", help="happiness, sadness, surprise, fear, anger, disgust, contempt or neutral")
    target.add_argument("--aus", metavar="AUS", help="action units, e.g. 'AU12=0.8,AU6=0.5' (intensities in [0, 1])")
    target.add_argument("--va", metavar="V,A", help="valence,arousal in [-1, 1], e.g. '0.6,0.3'")
    target.add_argument("--all", action="store_true", help="every expression (neutral too) plus a contact sheet")
    s.add_argument("--intensity", type=float, default=1.0, help="expression intensity in [0, 1] (default 1)")
    s.add_argument("--out", required=True, metavar="DIR", help="output folder: DIR/<stem>_<target>.png")
    s.add_argument("--landmarks", help="68-point landmarks for a single photo instead of detection")
    s.add_argument("--replace-expression", action="store_true",
                   help="replace the photo's own expression instead of keeping its resting face (for photos "
                        "that are not neutral: 'neutral' then removes a smile)")
    s.add_argument("--model", help="path to ict_face_model.npz")
    _add_shading_options(s)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    s.set_defaults(func=_cmd_synthesize)

    q = sub.add_parser("sequence", help="render a path through the valence-arousal plane as frames or a video")
    _add_photo_options(q)
    q.add_argument("--path", required=True, help="VA corner points 'v,a;v,a;...', e.g. '0,0;0.8,0.4;-0.6,0.6;0,0'")
    q.add_argument("--frames", type=int, default=90, help="number of frames, at constant speed along the path")
    q.add_argument("--fps", type=float, default=30.0, help="frame rate of the video (default 30)")
    q.add_argument("--out", required=True, help="OUT.mp4 for a video, or a folder for PNG frames")
    q.add_argument("--blinks", type=float, default=0.0, metavar="PER_MIN",
                   help="blink at random intervals, this many times a minute on average (e.g. 17; "
                        "default 0: no blinks)")
    q.add_argument("--seed", type=int, default=0, help="seed of the blinks' random intervals (default 0)")
    q.set_defaults(func=_cmd_sequence)

    v = sub.add_parser("vaplane", help="draw the valence-arousal plane filled with a photo's faces")
    _add_photo_options(v)
    v.add_argument("--out", required=True, help="output image, e.g. plane.png")
    v.add_argument("--grid", type=int, default=5, help="faces per side of the grid (default 5)")
    v.add_argument("--tile", type=int, default=160, help="size of each face in pixels (default 160)")
    v.set_defaults(func=_cmd_vaplane)

    sh = sub.add_parser("shading", help="learn expression shading (skin folds, furrows) from labelled photos")
    shsub = sh.add_subparsers(dest="shading_command", required=True, metavar="ACTION")
    sb = shsub.add_parser("build", help="from neutral and expression photos of the same people (e.g. TCCE)")
    sb.add_argument("--labels", required=True, help="CSV with the columns file, expression, subject")
    sb.add_argument("--images", help="folder of the photos (default: 'images' beside the CSV)")
    sb.add_argument("--out", required=True, metavar="FILE.npz", help="output file")
    sb.add_argument("--strength", type=float, default=None,
                    help="fraction of the measured ratio rendered (default: affcore.shading.DEFAULT_STRENGTH, 0.65)")
    sb.add_argument("--min-people", type=int, default=5, help="people needed per vertex and expression (default 5)")
    sb.add_argument("--model", help="path to ict_face_model.npz")
    sb.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    sb.set_defaults(func=_cmd_shading_build)

    m = sub.add_parser("model", help="find or import the ICT face model")
    msub = m.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    mi = msub.add_parser("import", help="build the model file from ICT-FaceKit's FaceXModel OBJ folder")
    mi.add_argument("path", help="folder with generic_neutral_mesh.obj, identityNNN.obj and expression OBJs")
    mi.add_argument("--dest", help="output file or folder (default: affcore's cache directory)")
    mi.set_defaults(func=_cmd_model_import)
    mn = msub.add_parser("info", help="say which model file is used")
    mn.add_argument("--model", help="explicit path to check")
    mn.set_defaults(func=_cmd_model_info)

    from .augment import add_augment_command  # the module, though the package exports the function

    add_augment_command(sub)
    from .fer.cli import add_fer_commands

    add_fer_commands(sub)
    i = sub.add_parser("info", help="print version and build information (CUDA, sanitizers)")
    i.set_defaults(func=_cmd_info)
    return p


def _one_line_warning(command: str):
    """A warnings.showwarning for the command line: each distinct message once, on one
    line of stderr, without the source line Python would print under it."""
    said = set()

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if text not in said:
            said.add(text)
            print(f"affcore {command}: warning: {text}", file=sys.stderr)

    return show


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a scheduler's time limit) ends a command as Ctrl-C does, so that
    its cleanups run: no temporary file is left behind, and batch jobs stop their workers.
    (Python's default for SIGTERM ends the process on the spot.)"""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can be set from the main thread only
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with _terminate_as_interrupt():
        if args.debug:
            return args.func(args)
        from .errors import AffcoreError

        try:
            with warnings.catch_warnings():
                warnings.showwarning = _one_line_warning(args.command)
                return args.func(args)
        except (CommandError, AffcoreError, ValueError, OSError, TypeError) as e:
            print(f"affcore {args.command}: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("affcore: interrupted", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
