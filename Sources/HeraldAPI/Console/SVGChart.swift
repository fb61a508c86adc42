/// Inline SVG charts for the console's overview, drawn from counters Herald keeps (no chart library, no script).
/// Pure: values in, markup out. Every text is escaped; colours come from CSS classes (the page's CSP forbids inline
/// styles).
enum SVGChart {
    /// One stacked series: a CSS class suffix (`s-<key>`), a legend name, a value per bucket.
    struct Series: Sendable, Equatable {
        var key: String
        var name: String
        var values: [Int]
    }

    /// Stacked bars, one per bucket, with a y axis (0, half, max), x labels at the given buckets and a legend.
    static func stackedBars(
        series: [Series], buckets: Int, xLabels: [(index: Int, text: String)], title: String, width: Int = 640, height: Int = 200
    ) -> String {
        let left = 40
        let right = 8
        let top = 8
        let bottom = 38
        let plotWidth = width - left - right
        let plotHeight = height - top - bottom
        let totals = (0..<buckets).map { bucket in series.reduce(0) { $0 + (bucket < $1.values.count ? $1.values[bucket] : 0) } }
        let maximum = niceCeiling(totals.max() ?? 0)
        let slot = Double(plotWidth) / Double(max(buckets, 1))
        let barWidth = max(1, slot * 0.8)
        var out =
            "<svg class=\"chart\" viewBox=\"0 0 \(width) \(height)\" role=\"img\" aria-label=\"\(escape(title))\" xmlns=\"http://www.w3.org/2000/svg\">"
        out += "<title>\(escape(title))</title>"
        // Grid lines at 0, half and the maximum (only 0 when there is nothing to draw).
        for fraction in maximum > 0 ? [0.0, 0.5, 1.0] : [0.0] {
            let y = Double(top) + Double(plotHeight) * (1 - fraction)
            out += "<line class=\"grid\" x1=\"\(left)\" y1=\"\(format(y))\" x2=\"\(width - right)\" y2=\"\(format(y))\"/>"
            out += "<text x=\"\(left - 4)\" y=\"\(format(y + 3))\" text-anchor=\"end\">\(format(Double(maximum) * fraction))</text>"
        }
        out += "<line class=\"axis\" x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(width - right)\" y2=\"\(top + plotHeight)\"/>"
        if maximum > 0 {
            for bucket in 0..<buckets {
                var base = Double(top + plotHeight)
                for entry in series {
                    let value = bucket < entry.values.count ? entry.values[bucket] : 0
                    guard value > 0 else { continue }
                    let barHeight = Double(plotHeight) * Double(value) / Double(maximum)
                    base -= barHeight
                    let x = Double(left) + slot * Double(bucket) + (slot - barWidth) / 2
                    out +=
                        "<rect class=\"s-\(escape(entry.key))\" x=\"\(format(x))\" y=\"\(format(base))\" width=\"\(format(barWidth))\" height=\"\(format(barHeight))\"><title>\(escape(entry.name)): \(value)</title></rect>"
                }
            }
        }
        for label in xLabels where (0..<buckets).contains(label.index) {
            let x = Double(left) + slot * (Double(label.index) + 0.5)
            out += "<text x=\"\(format(x))\" y=\"\(top + plotHeight + 12)\" text-anchor=\"middle\">\(escape(label.text))</text>"
        }
        var legendX = Double(left)
        out += "<g class=\"legend\">"
        for entry in series {
            let y = height - 8
            out += "<rect class=\"s-\(escape(entry.key))\" x=\"\(format(legendX))\" y=\"\(y - 8)\" width=\"9\" height=\"9\"/>"
            out += "<text x=\"\(format(legendX + 12))\" y=\"\(y)\">\(escape(entry.name))</text>"
            legendX += 18 + Double(entry.name.count) * 6.2
        }
        out += "</g></svg>"
        return out
    }

    /// The smallest 1, 2 or 5 × 10ⁿ at or above `value` (0 stays 0): round y-axis maxima.
    static func niceCeiling(_ value: Int) -> Int {
        guard value > 0 else { return 0 }
        var magnitude = 1
        while magnitude * 10 <= value { magnitude *= 10 }
        for step in [1, 2, 5, 10] where step * magnitude >= value { return step * magnitude }
        return 10 * magnitude
    }

    static func format(_ value: Double) -> String {
        let rounded = (value * 10).rounded() / 10
        return rounded == rounded.rounded() ? String(Int(rounded)) : String(rounded)
    }

    /// XML text and attribute escaping.
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
