"""Image panels: an image scaled to fit with a caption, the ERP panel with the viewport
outline / ROI tint / click-and-drag to look, and the viewport panel with grab-and-drag.

They only paint QImages prepared by the worker thread and turn mouse input into poses.
Drag state is tracked from press to release (not from the move event's buttons), so
synthetic input (QTest) and real mice behave the same.
"""
from __future__ import annotations

from PyQt5.QtCore import QPointF, QRectF, Qt, pyqtSignal
from PyQt5.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PyQt5.QtWidgets import QSizePolicy, QWidget

from core.media.geometry import Viewport

from .overlay import pose_at, position_of, viewport_outline

CAPTION_BG = QColor(0, 0, 0, 150)
OUTLINE = QColor(0, 255, 120)
BANNER_BG = QColor(200, 20, 20, 190)


#: caption lines below the title at most (the classical panel's caption states its link policy)
CAPTION_LINES = 2


def caption_lines(fm, title: str, caption: str, width: int) -> list[str]:
    """The caption bar's lines: title and caption on one line when they fit in ``width``
    pixels, else the title on its own line above the caption, broken at its " · " separators
    into up to :data:`CAPTION_LINES` lines (each elided only if it alone is wider than the
    panel), so that a long caption never cuts the title off."""
    one = f"{title}   {caption}" if caption else title
    if fm.horizontalAdvance(one) <= width:
        return [one]
    lines = [title] + (_wrap_at(fm, caption, " · ", width) if caption else [])
    return [fm.elidedText(line, Qt.ElideRight, max(width, 10)) for line in lines]


def _wrap_at(fm, text: str, sep: str, width: int) -> list[str]:
    """``text`` broken at ``sep`` into lines that fit ``width``; the last of
    :data:`CAPTION_LINES` lines takes the rest."""
    lines: list[str] = []
    for part in text.split(sep):
        if lines and (len(lines) == CAPTION_LINES
                      or fm.horizontalAdvance(lines[-1] + sep + part) <= width):
            lines[-1] += sep + part
        else:
            lines.append(part)
    return lines


class ImagePanel(QWidget):
    """A QImage scaled to fit (aspect kept, centred) with a caption bar and an optional banner."""

    resized = pyqtSignal()

    def __init__(self, title: str, aspect: float, parent=None):
        super().__init__(parent)
        self.title = title
        self.aspect = aspect  # width / height
        self.caption = ""
        self.banner = ""
        self.placeholder = "waiting for frames…"
        self.image: QImage | None = None
        self.setMinimumSize(160, int(160 / aspect))
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setFocusPolicy(Qt.ClickFocus)
        self.setAttribute(Qt.WA_OpaquePaintEvent)

    def set_image(self, image: QImage | None) -> None:
        if image is not self.image:
            self.image = image
            self.update()

    def set_text(self, caption: str = "", banner: str = "") -> None:
        if caption != self.caption or banner != self.banner:
            self.caption, self.banner = caption, banner
            self.update()

    def image_rect(self) -> QRectF:
        """Where the image is drawn: the largest rect of the panel's aspect, centred, on whole
        pixels (the worker makes images of exactly this size, so painting is a plain copy)."""
        w, h = self.width(), self.height()
        if w / max(h, 1) > self.aspect:
            iw, ih = int(h * self.aspect), h
        else:
            iw, ih = w, int(w / self.aspect)
        return QRectF((w - iw) // 2, (h - ih) // 2, iw, ih)

    def image_size(self) -> tuple[int, int]:
        r = self.image_rect()
        return int(r.width()), int(r.height())

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.resized.emit()

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(17, 17, 17))
        r = self.image_rect()
        if self.image is not None:
            if (self.image.width(), self.image.height()) == self.image_size():
                p.drawImage(r.topLeft(), self.image)  # made at this size: no scaling
            else:  # until the worker has caught up with a resize
                p.setRenderHint(QPainter.SmoothPixmapTransform, True)
                p.drawImage(r, self.image)
            self.paint_overlay(p, r)
        else:
            p.setPen(QColor(140, 140, 140))
            p.drawText(r, Qt.AlignCenter, self.placeholder)
        self._paint_text(p)
        p.end()

    def paint_overlay(self, p: QPainter, r: QRectF) -> None:
        pass

    def _paint_text(self, p: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(7.5, font.pointSizeF() * 0.95))
        p.setFont(font)
        fm = p.fontMetrics()
        lines = caption_lines(fm, self.title, self.caption, self.width() - 12)
        bar = QRectF(0, 0, self.width(), len(lines) * fm.height() + 6)
        p.fillRect(bar, CAPTION_BG)
        p.setPen(QColor(235, 235, 235))
        for i, line in enumerate(lines):
            p.drawText(QRectF(6, 3 + i * fm.height(), self.width() - 12, fm.height()),
                       Qt.AlignVCenter | Qt.AlignLeft, line)
        if self.banner:
            b = QRectF(0, self.height() - fm.height() - 8, self.width(), fm.height() + 8)
            p.fillRect(b, BANNER_BG)
            p.setPen(QColor(255, 255, 255))
            p.drawText(b, Qt.AlignCenter, fm.elidedText(self.banner, Qt.ElideRight, self.width() - 12))


class ErpPanel(ImagePanel):
    """ERP image; optional viewport outline + ROI tint; press/drag points the viewport there."""

    look_at = pyqtSignal(float, float)    # yaw, pitch (degrees)
    zoom = pyqtSignal(float)              # fov change (degrees)

    def __init__(self, title: str, interactive: bool = False, parent=None):
        super().__init__(title, 2.0, parent)
        self.interactive = interactive
        self.roi: QImage | None = None
        self.pose: Viewport | None = None
        self._outline: list = []
        self._polys: tuple | None = None  # (rect, [QPolygonF]) cache
        self._dragging = False
        if interactive:
            self.setCursor(Qt.CrossCursor)

    def set_overlay(self, pose: Viewport | None, roi: QImage | None) -> None:
        if pose == self.pose and roi is self.roi:
            return
        if pose != self.pose:
            self.pose = pose
            self._outline = viewport_outline(pose) if pose is not None else []
            self._polys = None
        self.roi = roi
        self.update()

    def paint_overlay(self, p: QPainter, r: QRectF) -> None:
        if self.roi is not None:
            p.setRenderHint(QPainter.SmoothPixmapTransform, False)
            p.drawImage(r, self.roi)
        if self.pose is not None:
            p.setRenderHint(QPainter.Antialiasing, True)
            p.setPen(QPen(OUTLINE, 2))
            if self._polys is None or self._polys[0] != r:
                self._polys = (r, [QPolygonF([QPointF(r.x() + x * r.width(), r.y() + y * r.height())
                                              for x, y in seg]) for seg in self._outline])
            for poly in self._polys[1]:
                p.drawPolyline(poly)
            cx, cy = position_of(self.pose.yaw, self.pose.pitch)
            p.drawEllipse(QPointF(r.x() + cx * r.width(), r.y() + cy * r.height()), 3, 3)

    def _emit_at(self, pos) -> None:
        r = self.image_rect()
        x = (pos.x() - r.x()) / max(r.width(), 1)
        y = (pos.y() - r.y()) / max(r.height(), 1)
        self.look_at.emit(*pose_at(x, min(max(y, 0.0), 1.0)))

    def mousePressEvent(self, e) -> None:
        if self.interactive and e.button() == Qt.LeftButton:
            self._dragging = True
            self._emit_at(e.pos())

    def mouseMoveEvent(self, e) -> None:
        if self.interactive and self._dragging:
            self._emit_at(e.pos())

    def mouseReleaseEvent(self, e) -> None:
        if self.interactive and self._dragging and e.button() == Qt.LeftButton:
            self._emit_at(e.pos())
            self._dragging = False

    def wheelEvent(self, e) -> None:
        if self.interactive:
            self.zoom.emit(-5.0 * e.angleDelta().y() / 120.0)


class ViewportPanel(ImagePanel):
    """Rendered viewport; dragging grabs the scene (drag right = look left)."""

    turn = pyqtSignal(float, float)   # d_yaw, d_pitch (degrees)
    zoom = pyqtSignal(float)

    def __init__(self, title: str, parent=None):
        super().__init__(title, 1.0, parent)
        self.fov = 90.0
        self._last = None
        self.setCursor(Qt.OpenHandCursor)

    def _deg_per_px(self) -> float:
        return self.fov / max(self.image_rect().width(), 1.0)

    def mousePressEvent(self, e) -> None:
        if e.button() == Qt.LeftButton:
            self._last = e.pos()
            self.setCursor(Qt.ClosedHandCursor)

    def mouseMoveEvent(self, e) -> None:
        if self._last is not None:
            d = e.pos() - self._last
            self._last = e.pos()
            k = self._deg_per_px()
            if d.x() or d.y():
                self.turn.emit(-d.x() * k, d.y() * k)

    def mouseReleaseEvent(self, e) -> None:
        if self._last is not None and e.button() == Qt.LeftButton:
            self.mouseMoveEvent(e)
            self._last = None
            self.setCursor(Qt.OpenHandCursor)

    def wheelEvent(self, e) -> None:
        self.zoom.emit(-5.0 * e.angleDelta().y() / 120.0)
