import HeraldWorkflow

/// A workflow's step graph as inline SVG for the console: the trigger on top, each step in the row of its longest
/// path from the trigger (so parallel branches sit side by side), an arrow per `needs` edge, the step's type and
/// condition under its id. Pure; every text escaped.
enum StepGraphSVG {
    static let nodeWidth = 200
    static let nodeHeight = 50
    static let columnGap = 24
    static let rowGap = 40

    /// Each step's row (1-based; the trigger is row 0): 1 + the deepest of its needs.
    static func rows(_ workflow: Workflow) -> [String: Int] {
        var rows: [String: Int] = [:]
        // `steps` are in file order and `needs` only name earlier or validated steps; iterate to a fixed point so the
        // order does not matter.
        var changed = true
        var rounds = 0
        while changed && rounds <= workflow.steps.count {
            changed = false
            rounds += 1
            for step in workflow.steps {
                let row = 1 + (step.needs.compactMap { rows[$0] }.max() ?? 0)
                if rows[step.id] != row {
                    rows[step.id] = row
                    changed = true
                }
            }
        }
        return rows
    }

    static func render(_ workflow: Workflow) -> String {
        let rows = rows(workflow)
        let depth = rows.values.max() ?? 0
        var byRow: [Int: [Step]] = [:]
        for step in workflow.steps { byRow[rows[step.id] ?? 1, default: []].append(step) }
        let widest = max(1, byRow.values.map(\.count).max() ?? 1)
        let width = max(480, widest * nodeWidth + (widest - 1) * columnGap + 40)
        let height = 40 + depth * (nodeHeight + rowGap) + 20
        var centers: [String: (x: Int, y: Int)] = [:]
        for (row, steps) in byRow {
            let rowWidth = steps.count * nodeWidth + (steps.count - 1) * columnGap
            let start = (width - rowWidth) / 2
            for (index, step) in steps.enumerated() {
                centers[step.id] = (
                    start + index * (nodeWidth + columnGap) + nodeWidth / 2, 40 + (row - 1) * (nodeHeight + rowGap) + rowGap
                )
            }
        }
        let trigger = (x: width / 2, y: 18)
        let e = SVGChart.escape
        var out =
            "<svg class=\"steps\" viewBox=\"0 0 \(width) \(height + 30)\" width=\"\(width)\" role=\"img\" aria-label=\"Step graph of \(e(workflow.id))\" xmlns=\"http://www.w3.org/2000/svg\">"
        out +=
            "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\"/></marker></defs>"
        for step in workflow.steps {
            guard let to = centers[step.id] else { continue }
            let sources: [(x: Int, y: Int)] =
                step.needs.isEmpty ? [trigger] : step.needs.compactMap { need in centers[need].map { (x: $0.x, y: $0.y + nodeHeight) } }
            for from in sources {
                let fromY = step.needs.isEmpty ? from.y + 10 : from.y
                let middle = (fromY + to.y) / 2
                out += "<path class=\"edge\" d=\"M\(from.x),\(fromY) C\(from.x),\(middle) \(to.x),\(middle) \(to.x),\(to.y)\"/>"
            }
        }
        out +=
            "<g class=\"node trigger\"><circle cx=\"\(trigger.x)\" cy=\"\(trigger.y)\" r=\"10\"/><text x=\"\(trigger.x + 16)\" y=\"\(trigger.y + 4)\">trigger: \(e(workflow.id))</text></g>"
        for step in workflow.steps {
            guard let center = centers[step.id] else { continue }
            let x = center.x - nodeWidth / 2
            let kind = step.type.channel == nil ? "node control" : "node channel"
            out +=
                "<g class=\"\(kind)\" id=\"node-\(e(step.id))\"><rect x=\"\(x)\" y=\"\(center.y)\" width=\"\(nodeWidth)\" height=\"\(nodeHeight)\" rx=\"6\"/>"
            out += "<text x=\"\(x + 8)\" y=\"\(center.y + 18)\">\(e(truncate(step.id, 22))) · \(e(step.type.rawValue))</text>"
            if let detail = detail(step) {
                out +=
                    "<text class=\"sub\" x=\"\(x + 8)\" y=\"\(center.y + 36)\">\(e(truncate(detail, 34)))<title>\(e(detail))</title></text>"
            }
            out += "</g>"
        }
        return out + "</svg>"
    }

    /// The second line of a node: its condition, else its timing.
    static func detail(_ step: Step) -> String? {
        if let condition = step.condition { return "if \(condition.source)" }
        switch step.action {
        case .delay(.duration(let duration)): return "wait \(duration)"
        case .delay(.until(let template)): return "until \(template.source)"
        case .digest(let spec): return "digest \(spec.window)"
        case .throttle(let spec): return "at most \(spec.limit) per \(spec.window)"
        default: return nil
        }
    }

    static func truncate(_ text: String, _ limit: Int) -> String {
        text.count <= limit ? text : String(text.prefix(limit - 1)) + "…"
    }
}
