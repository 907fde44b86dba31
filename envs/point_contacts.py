"""Walls of the point trap (:mod:`envs.point_trap`) and swept, frictionless contacts with them.

The collision shape is the body disc of radius ``BODY_RADIUS`` plus, optionally, the heading
marker ``ARROW`` kept pointing along +x. The obstacles of the body's centre are the walls grown
by the disc (boxes and corner circles) and by the arrow (boxes). A move is a straight segment
swept against them: the body stops ``SKIN`` off the first obstacle hit, loses its velocity into
it and slides along it, up to ``CONTACT_ITERATIONS`` contacts per move. Everything is
elementwise over the batch.
"""

from __future__ import annotations

import torch

BODY_RADIUS = 0.5
ARROW = (0.4, 1.4, 0.1)  # from, to (ahead of the centre along +x), half-width
WALLS = (
    (12.0, -2.3, 14.0, -1.7),  # lower arm
    (12.0, 1.7, 14.0, 2.3),  # upper arm
    (13.7, -2.0, 14.3, 2.0),  # back wall
)
SKIN = 1e-4
CONTACT_ITERATIONS = 3


def obstacles(
    *, arrow: bool = True
) -> tuple[list[tuple[float, float, float, float]], list[tuple[float, float]]]:
    """Configuration-space obstacles of the body's centre: boxes (x0, y0, x1, y1) and the
    centres of the corner circles (radius ``BODY_RADIUS``)."""
    r = BODY_RADIUS
    boxes, circles = [], []
    for x0, y0, x1, y1 in WALLS:
        boxes += [(x0 - r, y0, x1 + r, y1), (x0, y0 - r, x1, y1 + r)]
        circles += [(x0, y0), (x1, y0), (x0, y1), (x1, y1)]
        if arrow:
            ahead0, ahead1, half = ARROW
            boxes.append((x0 - ahead1, y0 - half, x1 - ahead0, y1 + half))
    return boxes, circles


class SweptContacts:
    """Swept contacts mixed into :class:`envs.point_trap.PointTrap`; they read the obstacle
    tables and constants of its ``_tables(device)``."""

    def _move(self, pos, vel, delta, c):
        """Move by ``delta [B, 2]``; on contact stop at the wall, drop the velocity into it and
        slide along it with what is left of the move."""
        for _ in range(CONTACT_ITERATIONS):
            t, normal = self.first_contact(pos, delta)
            hit = t <= c["1"]
            frac = torch.where(hit, t, c["1"])[:, None]
            normal = torch.where(hit[:, None], normal, c["0"])
            pos = pos + delta * frac + normal * c["skin"]
            rest = delta * (c["1"] - frac)
            into = torch.minimum(rest[:, 0] * normal[:, 0] + rest[:, 1] * normal[:, 1], c["0"])
            delta = rest - into[:, None] * normal
            into = torch.minimum(vel[:, 0] * normal[:, 0] + vel[:, 1] * normal[:, 1], c["0"])
            vel = vel - into[:, None] * normal
        return pos, vel

    def first_contact(self, pos: torch.Tensor, delta: torch.Tensor):
        """Earliest contact of the segment ``pos -> pos + delta`` with an obstacle.

        Returns:
            ``t [B]``, the fraction of the segment at contact (``inf`` when none), and the
            outward unit normal ``[B, 2]`` of the obstacle there (undefined when none).
        """
        c = self._tables(pos.device)
        # boxes (slab test; the obstacles are open sets, touching is not a contact)
        p, d = pos[:, None, :], delta[:, None, :]
        moving = d != c["0"]
        safe = torch.where(moving, d, c["1"])
        t_lo, t_hi = (c["lo"] - p) / safe, (c["hi"] - p) / safe
        inside = (p > c["lo"]) & (p < c["hi"])
        near = torch.where(
            moving, torch.minimum(t_lo, t_hi), torch.where(inside, c["-inf"], c["inf"])
        )
        far = torch.where(
            moving, torch.maximum(t_lo, t_hi), torch.where(inside, c["inf"], c["-inf"])
        )
        enter = torch.maximum(near[..., 0], near[..., 1])
        leave = torch.minimum(far[..., 0], far[..., 1])
        box_hit = (enter < leave) & (enter >= c["0"]) & (enter <= c["1"])
        t_box = torch.where(box_hit, enter, c["inf"])
        along_x = (near[..., 0] >= near[..., 1])[..., None]  # the face hit is normal to x
        back = -torch.sign(d)
        axis_x = torch.stack([c["1"], c["0"]]).reshape(1, 1, 2)
        n_box = torch.where(along_x, back * axis_x, back * (c["1"] - axis_x))
        # corner circles (first root of |p + t d - centre| = r, in its stable form)
        fx = pos[:, 0, None] - c["centres"][..., 0]
        fy = pos[:, 1, None] - c["centres"][..., 1]
        dx, dy = delta[:, 0, None], delta[:, 1, None]
        a = dx * dx + dy * dy
        b = fx * dx + fy * dy
        outside = fx * fx + fy * fy - c["r^2"]
        disc = b * b - a * outside
        ok = (outside > c["0"]) & (b < c["0"]) & (disc > c["0"])
        t_circle = outside / torch.where(ok, torch.sqrt(torch.where(ok, disc, c["1"])) - b, c["1"])
        circle_hit = ok & (t_circle <= c["1"])
        t_circle = torch.where(circle_hit, t_circle, c["inf"])
        hx, hy = fx + t_circle.clamp(max=1.0) * dx, fy + t_circle.clamp(max=1.0) * dy
        length = torch.where(circle_hit, torch.hypot(hx, hy), c["1"])
        n_circle = torch.stack([hx / length, hy / length], -1)
        # earliest of all (ties go to the first obstacle)
        t_all = torch.cat([t_box, t_circle], 1)
        n_all = torch.cat([n_box, n_circle], 1)
        t, index = t_all.min(1)
        normal = torch.take_along_dim(n_all, index[:, None, None].expand(-1, 1, 2), 1)[:, 0]
        return t, normal
