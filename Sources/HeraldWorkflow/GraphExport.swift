/// Renders a workflow's step graph for people: Mermaid (for Markdown) or Graphviz DOT.
public enum GraphFormat: String, Sendable, CaseIterable {
    case mermaid
    case dot
}

extension Workflow {
    /// The step graph with each step's type and condition.
    public func graphDescription(_ format: GraphFormat) -> String {
        let nodeIds = Dictionary(uniqueKeysWithValues: steps.enumerated().map { ($1.id, "s\($0)") })
        func label(_ step: Step) -> String {
            var text = "\(step.id) · \(step.type.rawValue)"
            switch step.action {
            case .delay(.duration(let duration)): text += " \(duration)"
            case .delay(.until(let template)): text += " until \(template.source)"
            case .digest(let spec): text += " \(spec.window)"
            case .throttle(let spec): text += " \(spec.limit) per \(spec.window)"
            default: break
            }
            if let condition = step.condition { text += "\nif \(condition.source)" }
            return text
        }
        switch format {
        case .mermaid:
            func escape(_ text: String) -> String {
                text.replacingOccurrences(of: "\"", with: "#quot;").replacingOccurrences(of: "\n", with: "<br/>")
            }
            var lines = ["flowchart TD", "    trigger((\"\(escape(id))\"))"]
            for step in steps { lines.append("    \(nodeIds[step.id]!)[\"\(escape(label(step)))\"]") }
            for step in steps {
                if step.needs.isEmpty { lines.append("    trigger --> \(nodeIds[step.id]!)") }
                for need in step.needs { lines.append("    \(nodeIds[need]!) --> \(nodeIds[step.id]!)") }
            }
            return lines.joined(separator: "\n") + "\n"
        case .dot:
            func escape(_ text: String) -> String {
                text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(
                    of: "\n", with: "\\n")
            }
            var lines = ["digraph \"\(escape(id))\" {", "    rankdir=TB;", "    trigger [shape=circle, label=\"\(escape(id))\"];"]
            for step in steps {
                let shape = step.type.channel == nil ? "diamond" : "box"
                lines.append("    \(nodeIds[step.id]!) [shape=\(shape), label=\"\(escape(label(step)))\"];")
            }
            for step in steps {
                if step.needs.isEmpty { lines.append("    trigger -> \(nodeIds[step.id]!);") }
                for need in step.needs { lines.append("    \(nodeIds[need]!) -> \(nodeIds[step.id]!);") }
            }
            return (lines + ["}"]).joined(separator: "\n") + "\n"
        }
    }
}
