"""Write the printable calibration target: a chessboard on A4, as PDF and 300-dpi PNG.

Run from the repository root (outputs are committed next to this script)::

    .venv/bin/python calibration/make_target.py

The PDF is written by hand (a handful of filled rectangles in PDF points, 1 mm =
72/25.4 pt) so the target needs no drawing library and stays exact: a printer
driver scaling it "to fit" is the one thing that breaks it, hence the 100 mm bar and
the caption. The PNG is rasterised at 300 dpi for printing from an image viewer.
"""

from __future__ import annotations

import argparse
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

MM_PER_INCH = 25.4
PT_PER_INCH = 72.0
PT_PER_MM = PT_PER_INCH / MM_PER_INCH
#: Caption baseline-to-baseline distance, in font sizes.
LINE_SPACING = 1.4
#: OpenCV's Hershey simplex font is about this many pixels tall at fontScale 1.0.
HERSHEY_PX_AT_SCALE_1 = 30.0


@dataclass(frozen=True)
class Target:
    """Layout of the target on the page, all in millimetres (page origin top-left)."""

    inner_cols: int = 9
    inner_rows: int = 6
    square_mm: float = 25.0
    page_w_mm: float = 210.0  # A4 portrait
    page_h_mm: float = 297.0
    board_top_mm: float = 10.0
    bar_length_mm: float = 100.0
    bar_height_mm: float = 4.0
    bar_tick_mm: float = 10.0
    tick_width_mm: float = 0.3
    gap_mm: float = 6.0  # between board, bar and caption
    caption_pt: float = 9.0
    caption_left_mm: float = 17.5

    @property
    def squares(self) -> tuple[int, int]:
        """(across, down) squares: one more than the inner corners each way."""
        return self.inner_cols + 1, self.inner_rows + 1

    @property
    def landscape_board(self) -> bool:
        """The 10-square side (250 mm) only fits A4 along its 297 mm side."""
        return self.squares[0] * self.square_mm > self.page_w_mm

    def rects_mm(self) -> list[tuple[float, float, float, float]]:
        """Black rectangles (x, y, w, h) in page mm, y down: squares, then the scale bar.

        A board wider than the page is turned 90° (its columns run down the page);
        the lattice is the same to the detector.
        """
        across, down = self.squares
        if self.landscape_board:
            across, down = down, across
        board_w = across * self.square_mm
        x0 = (self.page_w_mm - board_w) / 2
        y0 = self.board_top_mm
        rects = [
            (x0 + i * self.square_mm, y0 + j * self.square_mm, self.square_mm, self.square_mm)
            for j in range(down)
            for i in range(across)
            if (i + j) % 2 == 0
        ]
        bar_y = y0 + down * self.square_mm + self.gap_mm
        bar_x = (self.page_w_mm - self.bar_length_mm) / 2
        rects.append((bar_x, bar_y, self.bar_length_mm, self.bar_height_mm))
        ticks = round(self.bar_length_mm / self.bar_tick_mm)
        for t in range(ticks + 1):
            x = bar_x + t * self.bar_tick_mm - (self.tick_width_mm if t == ticks else 0.0)
            rects.append(
                (x, bar_y - self.bar_height_mm / 2, self.tick_width_mm, self.bar_height_mm / 2)
            )
        return rects

    def caption_y_mm(self) -> float:
        """Baseline of the first caption line, under the scale bar."""
        down = self.squares[0] if self.landscape_board else self.squares[1]
        bar_bottom = self.board_top_mm + down * self.square_mm + self.gap_mm + self.bar_height_mm
        return bar_bottom + self.gap_mm + self.caption_pt / PT_PER_MM

    def caption_lines(self) -> list[str]:
        board = f"{self.inner_cols}x{self.inner_rows}"
        return [
            f"Print at 100 % (no 'fit to page'), check the {self.bar_length_mm:g} mm bar "
            "with a ruler.",
            f"Chessboard {board} inner corners, {self.square_mm:g} mm squares. "
            "Glue it flat on a rigid board.",
            f"qc-station calibrate --board {board} --square-mm {self.square_mm:g} "
            "(measure a square; pass what you measure)",
        ]


def pdf_bytes(target: Target) -> bytes:
    """A one-page PDF: filled rectangles plus Helvetica text, coordinates in points."""
    page_w = target.page_w_mm * PT_PER_MM
    page_h = target.page_h_mm * PT_PER_MM
    ops = ["0 g"]
    for x, y, w, h in target.rects_mm():
        # PDF's y axis points up from the bottom of the page.
        ops.append(
            f"{x * PT_PER_MM:.3f} {page_h - (y + h) * PT_PER_MM:.3f} "
            f"{w * PT_PER_MM:.3f} {h * PT_PER_MM:.3f} re f"
        )
    y_pt = page_h - target.caption_y_mm() * PT_PER_MM
    for line in target.caption_lines():
        text = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        x_pt = target.caption_left_mm * PT_PER_MM
        ops.append(f"BT /F1 {target.caption_pt:g} Tf {x_pt:.3f} {y_pt:.3f} Td ({text}) Tj ET")
        y_pt -= target.caption_pt * LINE_SPACING
    content = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {page_w:.3f} {page_h:.3f}] "
            "/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>"
        ).encode(),
        b"<< /Length " + str(len(content)).encode() + b" >>\nstream\n" + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def png_image(target: Target, dpi: int) -> np.ndarray:
    """The same page rasterised at ``dpi``: white, black squares with exact edges."""
    px_per_mm = dpi / MM_PER_INCH
    w = round(target.page_w_mm * px_per_mm)
    h = round(target.page_h_mm * px_per_mm)
    img = np.full((h, w), 255, np.uint8)
    for x, y, rw, rh in target.rects_mm():
        c0, r0 = round(x * px_per_mm), round(y * px_per_mm)
        c1, r1 = round((x + rw) * px_per_mm), round((y + rh) * px_per_mm)
        img[r0:r1, c0:c1] = 0
    y_px = target.caption_y_mm() * px_per_mm
    scale = target.caption_pt / PT_PER_INCH * dpi / HERSHEY_PX_AT_SCALE_1
    for line in target.caption_lines():
        cv2.putText(
            img,
            line,
            (int(target.caption_left_mm * px_per_mm), int(y_px)),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            0,
            max(1, round(scale * 2)),
            cv2.LINE_AA,
        )
        y_px += target.caption_pt * LINE_SPACING / PT_PER_INCH * dpi
    return img


def write_png(path: Path, img: np.ndarray, dpi: int) -> None:
    """PNG with its pHYs chunk set, so viewers and printers know the true size."""
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise OSError(f"cannot encode {path}")
    data = bytes(buf)
    ppm = round(dpi / (MM_PER_INCH / 1000.0))  # pixels per metre
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4  # signature + IHDR length/type + data + CRC
    path.write_bytes(data[:ihdr_end] + chunk + data[ihdr_end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--dpi", type=int, default=300)
    args = parser.parse_args()
    t = Target()
    stem = f"chessboard_{t.inner_cols}x{t.inner_rows}_{t.square_mm:g}mm_A4"
    pdf = args.out / f"{stem}.pdf"
    png = args.out / f"{stem}_{args.dpi}dpi.png"
    pdf.write_bytes(pdf_bytes(t))
    write_png(png, png_image(t, args.dpi), args.dpi)
    print(f"wrote {pdf} and {png}")


if __name__ == "__main__":
    main()
