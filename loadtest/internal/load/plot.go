package load

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// PNG draws the run over time: messages ACKed per second (top) and the
// worst ACK latency of each second (bottom).
func (r *Report) PNG(w io.Writer) error {
	const width, panel, margin = 900, 260, 60
	img := image.NewRGBA(image.Rect(0, 0, width, 2*panel+3*margin/2))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	pts := r.Timeline
	for len(pts) > 1 && pts[len(pts)-1].Sent == 0 {
		pts = pts[:len(pts)-1] // seconds after the schedule ended
	}
	title := fmt.Sprintf("%s: %.0f msg/s target, %d connections, ACK p99 %.1f ms, e2e p99 %.1f ms, lost %d",
		r.Name, r.TargetRate, r.Connections, r.AckLatency.P99, r.E2ELatency.P99, r.Lost)
	label(img, margin, 20, title)
	series := func(top int, name string, val func(Point) float64, c color.RGBA) {
		max := 1.0
		for _, p := range pts {
			if v := val(p); v > max {
				max = v
			}
		}
		x0, y0, x1, y1 := margin, top, width-20, top+panel-30
		line(img, x0, y1, x1, y1, color.RGBA{0, 0, 0, 255})
		line(img, x0, y0, x0, y1, color.RGBA{0, 0, 0, 255})
		label(img, x0+5, y0+12, fmt.Sprintf("%s (max %.1f)", name, max))
		label(img, x0-45, y1+4, "0")
		label(img, x0-45, y0+4, fmt.Sprintf("%.0f", max))
		label(img, x1-60, y1+16, fmt.Sprintf("%d s", len(pts)))
		var px, py int
		for i, p := range pts {
			x := x0 + (x1-x0)*i/max1(len(pts)-1)
			y := y1 - int(float64(y1-y0)*val(p)/max)
			if i > 0 {
				line(img, px, py, x, y, c)
			}
			px, py = x, y
		}
	}
	series(margin/2+10, "ACKed per second", func(p Point) float64 { return float64(p.Acked) }, color.RGBA{0, 90, 180, 255})
	series(margin/2+10+panel+margin/2, "worst ACK latency per second (ms)", func(p Point) float64 { return p.MaxAckMS }, color.RGBA{200, 60, 0, 255})
	return png.Encode(w, img)
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}

func label(img *image.RGBA, x, y int, s string) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a line with Bresenham's algorithm.
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(a int) int {
	if a < 0 {
		return -a
	}
	return a
}

func sign(a int) int {
	switch {
	case a < 0:
		return -1
	case a > 0:
		return 1
	}
	return 0
}
