"""Where the skin of a moving upper lid is sampled in the photo.

A target moves an upper lid's margin up (surprise, fear) or down (sadness looks down) and
the skin between the margin and the brow stretches or unfolds with it. The model spreads
that motion unevenly: most of it falls on the fold above the lid, which the photo shows
edge-on, a few pixels tall. Sampled where the model puts it, that sliver of the photo was
drawn out to ten or twenty rows, and whatever varied along it (lashes, the crease's edge)
became vertical streaks (`008` and `024` under sadness and surprise).

Instead, the photo's lid is laid out again: the lash line
(``UPPER_LID_RIGID`` above the margin) moves with the margin unstretched, and the photo's
skin from there up to ``UPPER_LID_REACH`` above the margin covers the target's lid from
there up to where that height went. Above the reach, and for a lid that moves no further
than the skin above it, the model's own correspondence stays.

The photo's lid is spread evenly, except on a lid that closes (AU43, AU45: the target's
eyeBlink, ``_CLOSING_BLINK``; or any target that lowers it past ``_CLOSING_ONSET``). Such a
lid unfolds about a centimetre of skin that the photo hid in the fold above it; spread
evenly, the crease sagged with the margin into a wave, and the lashes above the lash line
were drawn out into streaks. There the lid's top moves with the skin above it, unstretched,
and the stretch grows towards the lash line (a power of the height, see
:func:`carry_upper_lids`), so the crease stays near its place; the skin the lid unfolds,
drawn out more than ``_FILL_STRETCH`` times, takes the lid's own colour instead (the upper
quartile of the photo's lid above that point, averaged along the lid; :func:`fill_lids`),
with the texture of the skin below the eye, mirrored about the lower lid's margin
(``LID_TEXTURE``): a closed lid was a smooth patch of one colour.

Everything here works on the vertices' screen positions, in pixels: per photo
(:func:`upper_lid_layout`) and per target (:func:`carry_upper_lids`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .model import boundary_edges

# The lash line, in cm above the margin: moved with the margin, unstretched. (LID_MARGIN's
# thickness of the photo's lid margin, lashes and eyeliner.)
UPPER_LID_RIGID = 0.13
# ...or taller, up to UPPER_LID_RIGID_MAX, where the photo's lid stays dark above it: heavy
# eyeliner and long or made-up lashes (jennifer_aniston, scarlett_johansson). Stretched with
# the lid, they spread into a dark band under surprise, and on a closing lid they stayed
# near the crease, a dark ring above the closed lid. The lash line reaches as high as the
# lid's brightness (the median across the middle of the lid, in steps of _RIGID_STEP cm)
# stays below LASH_DARK of the lid's skin (the upper quartile above the lash line).
UPPER_LID_RIGID_MAX = 0.35
LASH_DARK = 0.4
_RIGID_STEP = 0.02
# How far above the margin, in cm of the photo, the lid is laid out again: the lid and the
# fold above it, below the brow (the London photos' brows begin 0.6-1.2 cm above the margin).
UPPER_LID_REACH = 0.7
# Where the reach's top meets the model's own correspondence, the displacement of the skin
# there is read from the vertices within this band above it (cm of the photo).
_TOP_BAND = 0.1
# ...averaged along the lid with a Gaussian of this width (cm on the neutral face): the band
# holds several rows of vertices, which move apart under a raised brow, and interpolating
# between them left to right made the layout's stretch jagged.
_TOP_SIGMA = 0.1
# A lid that moves down relative to the skin at the reach's top by less than this (cm) is
# laid out only in part (in proportion), so the layout sets in continuously.
_ONSET = 0.05
# Beyond the eye's corners the layout fades out over this fraction of the eye's width.
_CORNER_FADE = 0.2
# A lid lowered by less than the first of these at most (cm, relative to the skin at the
# reach's top, between the eye's corners) is spread evenly, as a lid whose skin above rises;
# the closing layout sets in between the two, along the whole lid alike (set in vertex by
# vertex, it left streaks beside a filled middle). Sadness's eyes looking down lower the lid
# by up to 5.5 mm (AU43 at 0.75 and 1: 7-8 and 9-11 mm), and there the photo's lid drawn out
# evenly does not streak, while taking the lid's colour above the lash line lightened the
# heavy lids by which the FER2013 recogniser reads sadness (12 % of the 40 photos read as sad
# with it, 20 % without).
_CLOSING_ONSET = (0.6, 0.8)
# A target that closes the eye (eyeBlink's change from the fit, after synthesis's closing
# gain) lays the lid out as closing from this weight on, in proportion below it. Set in by
# the lowering alone (_CLOSING_ONSET), a partly closed lid (AU43 at 0.4-0.7) was spread
# evenly, or nearly so, and drew the lashes and the crease out into streaks, eyeliner into a
# black band. No expression prototype or valence-arousal target uses eyeBlink.
_CLOSING_BLINK = 0.3
# Where a closing lid's layout draws the photo's lid out more than the first of these (rows
# of the target per row of the photo, over the even stretch at the lid's top), its colour
# gives way to the lid's colour, fully at the second: a sliver of lashes or lid drawn out
# further showed as streaks.
_FILL_STRETCH = (1.5, 2.5)
# The lid's colour at a point: the per-channel upper quartile of this many samples of the
# photo's lid above it, from the lash line to the reach...
_COLOUR_SAMPLES = 9
# ...averaged along the lid with a Gaussian of this width (cm on the neutral face): narrower,
# the lashes' clumps and the crease's shadows above some points drew vertical bands across a
# closed lid.
_COLOUR_SIGMA = 0.3
# The skin the lid unfolds has no texture in the photo, and its colour alone drew a smooth
# patch, like a sticker over the eye. It takes the skin's texture of the photo below the
# eye instead: the skin under the lower lid, mirrored about the lower lid's margin (a point
# this far above the closed lid's margin takes the texture from as far below the lower
# lid's margin, plus LID_TEXTURE_GAP cm: the lower lid's rim, whose light waterline drew a
# light line above the closed lashes), as its brightness over its own Gaussian blur of
# LID_TEXTURE_SIGMA (cm), i.e. the detail finer than about a millimetre and a half: pores,
# fine lines. LID_TEXTURE scales that detail (1: as in the photo). Where what lies there
# is not skin (the eyeball, under a lid that is half closed), none.
LID_TEXTURE = 1.0
LID_TEXTURE_SIGMA = 0.15
LID_TEXTURE_GAP = 0.13


@dataclasses.dataclass(frozen=True)
class UpperLidVertices:
    """The model's vertices of one upper lid (indices into the mesh's vertices)."""

    margin: np.ndarray      # the lid's margin, left to right on the neutral face
    skin: np.ndarray        # skin above the margin, out past the eye's corners
    fade: np.ndarray        # (len(skin),) float32 in [0, 1]: 1 between the corners, to 0 beyond
    lower: np.ndarray       # the eye's corners and lower lid landmarks: the lower lid's margin


@dataclasses.dataclass(frozen=True)
class UpperLidLayout:
    """One upper lid of a fitted photo (:func:`upper_lid_layout`)."""

    margin: np.ndarray      # as UpperLidVertices.margin
    margin_x: np.ndarray    # their x on the neutral face (increasing)
    lower: np.ndarray       # as UpperLidVertices.lower
    rigid: float            # px: the lash line's height above the margin (_lash_line)
    skin: np.ndarray        # the lid's skin within the reach
    skin_x: np.ndarray
    height: np.ndarray      # (len(skin),) px: its height above the margin in the photo
    fade: np.ndarray        # (len(skin),)
    top: np.ndarray         # the skin just above the reach
    top_weights: np.ndarray  # (len(skin), len(top)) float32: each skin vertex's average of them
    colour: np.ndarray      # (len(skin), 3) float32: the lid's colour above each one's margin
    eye: int                # its index in the lids given to upper_lid_layout


@dataclasses.dataclass(frozen=True)
class CarriedLids:
    """The upper lids under one target (:func:`carry_upper_lids`)."""

    vertices: np.ndarray    # (K,) the lids' skin vertices whose photo position changes
    moves: np.ndarray       # (K, 2) px: by how much
    fill: np.ndarray        # (K,) float32 in [0, 1]: how far each takes the lid's colour instead
    colour: np.ndarray      # (K, 3) float32: that colour
    margins: tuple = ()     # per lid carried: its UpperLidLayout.margin
    lowers: tuple = ()      # ...and its UpperLidLayout.lower


def screen_down(rotation: np.ndarray) -> np.ndarray:
    """(2,) unit vector on screen along which the face's y axis points down, for a fit's
    rotation (FitResult.project: screen x = s (R v)_x + t, screen y = -s (R v)_y + t)."""
    down = np.array([-rotation[0, 1], rotation[1, 1]], np.float64)
    return down / max(float(np.linalg.norm(down)), 1e-12)


def _rings(triangles: np.ndarray, start: np.ndarray, n: int, count: int) -> np.ndarray:
    """(n,) int: each vertex's number of edges from ``start`` (0) up to ``count``; -1 beyond."""
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    edges = np.concatenate([edges, edges[:, ::-1]])
    ring = np.full(n, -1)
    ring[start] = 0
    for k in range(1, count + 1):
        reached = edges[ring[edges[:, 0]] == k - 1, 1]
        reached = reached[ring[reached] < 0]
        ring[reached] = k
    return ring


def upper_lid_vertices(neutral: np.ndarray, skin_triangles: np.ndarray, eye_landmarks) -> list[UpperLidVertices]:
    """The two upper lids of a face mesh.

    ``neutral`` (N, 3): the neutral face (cm, y up); ``skin_triangles`` (T, 3) the skin's
    triangles; ``eye_landmarks``: for each eye, the vertices of its six iBUG points (outer
    corner, the two upper lid points, inner corner, the two lower ones, as iBUG orders
    them; either eye).
    The skin is open at each eye, its edge rolling in behind the lids; the margin is the
    ring of vertices around that opening that the upper lid's landmarks lie on, above the
    line between the corners.
    """
    n = len(neutral)
    open_edge = np.unique(boundary_edges(skin_triangles))
    used = np.unique(skin_triangles)
    xy = neutral[:, :2]
    lids = []
    for eye in eye_landmarks:
        eye = np.asarray(eye)
        centre = xy[eye].mean(axis=0)
        corners = xy[eye[[0, 3]]]
        width = float(np.abs(corners[1, 0] - corners[0, 0]))
        # the opening's edge: the skin's open edges around this eye
        opening = open_edge[np.linalg.norm(xy[open_edge] - centre, axis=1) < width]
        if len(opening) == 0:  # not a mesh open at the eyes: no layout
            continue
        upper_ring = int(_rings(skin_triangles, opening, n, 8)[eye[[1, 2]]].max())
        if upper_ring < 0:  # the lid's landmarks are not near the opening
            continue
        ring = _rings(skin_triangles, opening, n, upper_ring)
        lo, hi = np.sort(corners[:, 0])
        left, right = corners[np.argsort(corners[:, 0])]
        corner_line = np.interp(xy[:, 0], [left[0], right[0]], [left[1], right[1]])
        margin = np.flatnonzero((ring == upper_ring) & (xy[:, 1] > corner_line) & (xy[:, 0] > lo) & (xy[:, 0] < hi))
        margin = margin[np.argsort(xy[margin, 0])]
        above = xy[used, 1] - np.interp(xy[used, 0], xy[margin, 0], xy[margin, 1])
        beyond = _CORNER_FADE * width * 1.25  # past the corners: the fade and a little more
        # up to 2 cm above the margin, well past the brow (the reach is measured in the photo,
        # per photo); not the rings inside the margin, which roll in behind the lid with it
        skin = used[(xy[used, 0] > lo - beyond) & (xy[used, 0] < hi + beyond) & (above > -0.05) & (above < 2.0)
                    & (ring[used] < 0)]
        fade_width = _CORNER_FADE * width
        fade = np.clip(np.minimum(xy[skin, 0] - lo, hi - xy[skin, 0]) / fade_width + 1.0, 0.0, 1.0)
        lids.append(UpperLidVertices(margin=margin, skin=skin, fade=fade.astype(np.float32), lower=eye[[0, 5, 4, 3]]))
    return lids


def upper_lid_layout(lids: list[UpperLidVertices], neutral_x: np.ndarray, source_xy: np.ndarray,
                     down: np.ndarray, scale: float, image: np.ndarray) -> list[UpperLidLayout]:
    """The upper lids of a fitted photo: ``source_xy`` (N, 2) the vertices in the photo
    (px), ``down`` the unit vector in the photo along which the face's y axis points down,
    ``scale`` pixels per cm, ``neutral_x`` (N,) the vertices' x on the neutral face,
    ``image`` the photo (H, W, 3) uint8."""
    from .render import sample_bilinear

    along = source_xy @ down
    out = []
    for eye, lid in enumerate(lids):
        margin_x = neutral_x[lid.margin]
        height = np.interp(neutral_x[lid.skin], margin_x, along[lid.margin]) - along[lid.skin]
        within = height < UPPER_LID_REACH * scale
        top = (~within) & (height < (UPPER_LID_REACH + _TOP_BAND) * scale)
        top = lid.skin[top]
        if len(top) == 0:
            continue
        skin = lid.skin[within]
        weights = np.exp(-0.5 * ((neutral_x[skin, None] - neutral_x[None, top]) / _TOP_SIGMA) ** 2)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-30)
        # the lid's colour above each vertex's margin: the upper quartile of the photo between
        # the lash line and the reach, per channel (lashes and the shadows of the fold and the
        # eye's socket are dark; the median made the closed lids of light skin grey), then
        # averaged along the lid
        margin_xy = source_xy[skin] + height[within, None] * down
        rigid = _lash_line(image, margin_xy[lid.fade[within] >= 1], down, scale)
        # heights above the margin (px) at which the lid's colour is sampled
        heights = np.linspace(rigid, UPPER_LID_REACH * scale, _COLOUR_SAMPLES)
        points = margin_xy[:, None, :] - heights[None, :, None] * down
        samples = sample_bilinear(image, np.ascontiguousarray(points, np.float32), threads=1)
        quartile = np.percentile(samples.reshape(len(skin), len(heights), -1), 75, axis=1)
        along_lid = np.exp(-0.5 * ((neutral_x[skin, None] - neutral_x[None, skin]) / _COLOUR_SIGMA) ** 2)
        colour = (along_lid @ quartile) / along_lid.sum(axis=1, keepdims=True)
        out.append(UpperLidLayout(margin=lid.margin, margin_x=margin_x, lower=lid.lower, rigid=rigid,
                                  skin=skin, skin_x=neutral_x[skin],
                                  height=height[within].astype(np.float32), fade=lid.fade[within],
                                  top=top, top_weights=weights.astype(np.float32),
                                  colour=colour.astype(np.float32), eye=eye))
    return out


def _lash_line(image: np.ndarray, margin_xy: np.ndarray, down: np.ndarray, scale: float) -> float:
    """The lash line's height above the margin, px (see UPPER_LID_RIGID_MAX): ``margin_xy``
    (M, 2) points of the margin in the photo between the eye's corners."""
    from .render import sample_bilinear

    least = UPPER_LID_RIGID * scale
    if len(margin_xy) < 3:
        return least
    # the middle of the lid: its corners are the lashes' and the fold's shadows
    order = np.argsort(margin_xy @ np.array([-down[1], down[0]]))
    middle = margin_xy[order[len(order) // 5:len(order) - len(order) // 5]]
    heights = np.arange(UPPER_LID_RIGID, UPPER_LID_REACH + 1e-6, _RIGID_STEP) * scale
    points = middle[:, None, :] - heights[None, :, None] * down
    samples = sample_bilinear(image, np.ascontiguousarray(points, np.float32), threads=1)
    grey = samples.reshape(len(middle), len(heights), -1).sum(axis=2)  # (x channels: only ratios matter)
    profile = np.median(grey, axis=0)
    skin = np.percentile(profile, 75)
    dark = profile < LASH_DARK * skin
    most = UPPER_LID_RIGID_MAX * scale
    # the first height from the lash line up where the lid is no longer dark
    light = np.flatnonzero(~dark)
    top = heights[light[0]] if len(light) else heights[-1]
    return float(min(max(top, least), most))


def carry_upper_lids(target_xy: np.ndarray, source_xy: np.ndarray, layout: list[UpperLidLayout],
                     down: np.ndarray, scale: float, blink) -> CarriedLids | None:
    """Where the upper lids' skin is sampled in the photo under a target, laid out again
    (see the module's docstring), and where it takes the lid's colour instead; None when no
    lid moves down relative to the skin above it. ``target_xy`` (N, 2): the vertices on
    screen under the target; ``source_xy`` (N, 2): where the fit put them in the photo;
    ``blink``: per lid of upper_lid_layout's (indexed by UpperLidLayout.eye), how far the
    target closes that eye (eyeBlink's change from the fit, as the geometry applies it)."""
    def moved(v):  # how far these vertices move down, px
        return (target_xy[v] - source_xy[v]) @ down

    vertices, moves, fills, colours, margins, lowers = [], [], [], [], [], []
    reach = UPPER_LID_REACH * scale
    for lid in layout:
        rigid = lid.rigid
        margin_moved = np.interp(lid.skin_x, lid.margin_x, moved(lid.margin))
        lowered = np.maximum(margin_moved - lid.top_weights @ moved(lid.top), 0.0)
        weight = np.clip(lowered / (_ONSET * scale), 0.0, 1.0) * lid.fade
        if not weight.any():
            continue
        # height above the margin under the target, and the photo's height it shows: the
        # same on the lash line; above it, the target's rigid..(reach + lowered), as a
        # fraction u, shows the photo's rigid..reach at u ** power. A lid lowered because
        # the skin above it rises (surprise's brows), or lowered by less than _CLOSING_ONSET
        # (sadness) by a target that does not close the eye (_CLOSING_BLINK), is stretched
        # evenly (power 1). As far as the margin itself comes down on a lid that closes, the
        # power grows so that that part of the stretch falls low on the lid, where a closing
        # lid unfolds the skin the photo hid in its fold, and the top moves with the skin
        # above it (power 1 + lowered / span when the margin comes down the whole way).
        above = np.interp(lid.skin_x, lid.margin_x, target_xy[lid.margin] @ down) - target_xy[lid.skin] @ down
        span = reach - rigid
        most = float(lowered[lid.fade >= 1].max(initial=0.0)) / scale  # cm, between the corners
        closes = max(float(np.clip((most - _CLOSING_ONSET[0]) / (_CLOSING_ONSET[1] - _CLOSING_ONSET[0]), 0.0, 1.0)),
                     float(np.clip(blink[lid.eye] / _CLOSING_BLINK, 0.0, 1.0)))
        closing = np.clip(margin_moved, 0.0, lowered) * closes
        power = (span + lowered) / (span + lowered - closing)
        u = np.maximum(above - rigid, 0.0) / (span + lowered)
        shown = np.where(above <= rigid, above, rigid + span * u ** power)
        # rows of the target per row of the photo there (d above / d shown), against the
        # even stretch at the top: the unfolded skin's share of it
        with np.errstate(divide="ignore"):
            stretch = np.where(above <= rigid, 1.0, u ** (1.0 - power))
        low, high = _FILL_STRETCH
        vertices.append(lid.skin)
        moves.append((weight * (lid.height - shown))[:, None] * down)
        fills.append(weight * np.clip((stretch - low) / (high - low), 0.0, 1.0))
        colours.append(lid.colour)
        margins.append(lid.margin)
        lowers.append(lid.lower)
    if not vertices:
        return None
    return CarriedLids(vertices=np.concatenate(vertices), moves=np.concatenate(moves),
                      fill=np.concatenate(fills).astype(np.float32), colour=np.concatenate(colours),
                      margins=tuple(margins), lowers=tuple(lowers))


def fill_lids(composite: np.ndarray, triangle_id: np.ndarray, barycentrics: np.ndarray, triangles: np.ndarray,
              lids: CarriedLids, box_xy: np.ndarray, num_vertices: int, skin: np.ndarray, scale: float,
              threads: int = 0) -> None:
    """In place: where :func:`carry_upper_lids` draws a lid out too far, the composite
    (H, W, 3) uint8 takes the lid's colour, in proportion to ``lids.fill`` (interpolated per
    pixel over the target's raster ``triangle_id``, ``barycentrics`` of ``triangles``), with
    the texture of the skin below the eye (``LID_TEXTURE``). ``box_xy`` (N, 2): the vertices'
    positions in the composite's box (px); ``lids``' vertices index them, and
    ``num_vertices`` = N. ``skin`` (T,) bool: which of ``triangles`` are skin; ``scale``:
    pixels per cm."""
    from .render import interpolate

    filled = np.zeros(num_vertices, bool)
    filled[lids.vertices[lids.fill > 0]] = True
    if not filled.any():
        return
    # the pixels to fill lie in the triangles that have a filled vertex
    at = box_xy[triangles[filled[triangles].any(axis=1)]].reshape(-1, 2)
    h, w = triangle_id.shape
    x0, y0 = (int(np.clip(np.floor(at[:, k].min()) - 1, 0, n)) for k, n in ((0, w), (1, h)))
    x1, y1 = (int(np.clip(np.ceil(at[:, k].max()) + 2, 0, n)) for k, n in ((0, w), (1, h)))
    if x1 <= x0 or y1 <= y0:
        return
    attributes = np.zeros((num_vertices, 4), np.float32)
    attributes[lids.vertices, 0] = lids.fill
    attributes[lids.vertices, 1:] = lids.fill[:, None] * lids.colour
    tid = np.ascontiguousarray(triangle_id[y0:y1, x0:x1])
    pixel = interpolate(attributes, triangles, tid, np.ascontiguousarray(barycentrics[y0:y1, x0:x1]),
                        threads=threads)
    fill = pixel[..., 0]
    at_fill = (tid >= 0) & (fill > 0)
    ys, xs = np.nonzero(at_fill)
    texture = _lid_texture(composite, triangle_id, skin, lids, box_xy, ys + y0, xs + x0, scale)
    box = composite[y0:y1, x0:x1]
    # (1 - f) photo + f colour x texture; the attributes hold f colour, so interpolation
    # weights the colour by the fill
    mixed = (1.0 - fill[at_fill, None]) * box[at_fill] + pixel[at_fill, 1:] * texture[:, None]
    box[at_fill] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)


def _lid_texture(composite: np.ndarray, triangle_id: np.ndarray, skin: np.ndarray, lids: CarriedLids,
                 box_xy: np.ndarray, ys: np.ndarray, xs: np.ndarray, scale: float) -> np.ndarray:
    """The skin's texture for the filled lid pixels (``ys``, ``xs`` in the composite's box),
    as a factor on their colour (1: none): the composite's brightness over its blur at the
    mirrored point below the lower lid (see LID_TEXTURE), read between the two nearest rows.
    Read before the lids are filled (the mirrored points lie below the eye, the filled
    pixels above it)."""
    import cv2

    out = np.ones(len(ys), np.float32)
    if LID_TEXTURE == 0 or len(ys) == 0 or not lids.margins:
        return out
    h, w = triangle_id.shape
    # each pixel's lid: the one whose margin's middle lies nearest across
    middles = np.array([box_xy[m, 0].mean() for m in lids.margins])
    which = np.argmin(np.abs(xs[:, None] - middles[None, :]), axis=1)
    source = np.full(len(ys), -1.0)
    for k, (margin, lower) in enumerate(zip(lids.margins, lids.lowers)):
        mine = which == k
        m = box_xy[margin][np.argsort(box_xy[margin, 0])]
        lo = box_xy[lower][np.argsort(box_xy[lower, 0])]
        upper_y = np.interp(xs[mine], m[:, 0], m[:, 1])
        lower_y = np.maximum(np.interp(xs[mine], lo[:, 0], lo[:, 1]), upper_y)
        source[mine] = lower_y + LID_TEXTURE_GAP * scale + np.maximum(upper_y - ys[mine], 0.0)
    row0 = np.floor(source).astype(int)
    inside = (row0 >= 0) & (row0 + 1 < h)
    if not inside.any():
        return out
    # the composite's brightness and its blur over the rows and columns read
    r0, r1 = int(row0[inside].min()), int(row0[inside].max()) + 2
    sigma = max(LID_TEXTURE_SIGMA * scale, 0.5)
    pad = int(np.ceil(3 * sigma))
    c0, c1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)
    b0, b1 = max(r0 - pad, 0), min(r1 + pad, h)
    tid = triangle_id[b0:b1, c0:c1]
    covered = (tid >= 0).astype(np.float32)
    is_skin = (tid >= 0) & skin[np.maximum(tid, 0)]
    # (the blur over covered pixels only: the composite is undefined off the face)
    grey = cv2.cvtColor(np.ascontiguousarray(composite[b0:b1, c0:c1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey *= covered
    blur = cv2.GaussianBlur(grey, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(covered, (0, 0), sigma), 1e-3)
    detail = grey / np.maximum(blur, 1.0)
    i = np.flatnonzero(inside)
    ya, xa = row0[i] - b0, xs[i] - c0
    t = (source[i] - row0[i]).astype(np.float32)
    ok = is_skin[ya, xa] & is_skin[ya + 1, xa]
    value = (1.0 - t) * detail[ya, xa] + t * detail[ya + 1, xa]
    out[i[ok]] = 1.0 + LID_TEXTURE * (value[ok] - 1.0)
    return out
