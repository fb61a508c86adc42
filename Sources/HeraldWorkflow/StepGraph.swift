/// The dependencies between a workflow's steps: who waits for whom, a topological order, and the layers of steps
/// that may run in parallel.
public struct StepGraph: Sendable {
    /// Step id → the ids it waits for.
    public let dependencies: [String: [String]]
    /// Every step, dependencies first (file order among independent steps).
    public let order: [String]
    /// Steps grouped by the length of their longest dependency chain: each layer's steps may run in parallel.
    public let layers: [[String]]

    /// Every step that must finish before `step` can run (transitively).
    public func ancestors(of step: String) -> Set<String> {
        var result = Set<String>()
        var stack = dependencies[step] ?? []
        while let next = stack.popLast() {
            if result.insert(next).inserted { stack.append(contentsOf: dependencies[next] ?? []) }
        }
        return result
    }

    /// Steps that may start as soon as the workflow is triggered.
    public var roots: [String] { order.filter { dependencies[$0]?.isEmpty ?? true } }

    /// Steps that wait directly for `step`.
    public func dependents(of step: String) -> [String] { order.filter { dependencies[$0]?.contains(step) == true } }

    /// Builds the graph. `steps` are (id, explicit `needs`) in file order; nil needs means "the previous step".
    /// Returns the graph and, when the dependencies are not a DAG, the cycles and the steps stuck behind them.
    static func build(_ steps: [(id: String, needs: [String]?)]) -> (graph: StepGraph, cycles: [[String]], stuck: [String]) {
        var dependencies: [String: [String]] = [:]
        for (index, step) in steps.enumerated() {
            dependencies[step.id] = step.needs ?? (index == 0 ? [] : [steps[index - 1].id])
        }
        let ids = steps.map(\.id)
        // Kahn's algorithm, preferring file order.
        var remaining = Dictionary(uniqueKeysWithValues: ids.map { ($0, Set(dependencies[$0] ?? []).intersection(ids)) })
        var order: [String] = []
        var depth: [String: Int] = [:]
        while let next = ids.first(where: { remaining[$0]?.isEmpty == true }) {
            remaining[next] = nil
            order.append(next)
            depth[next] = (dependencies[next] ?? []).compactMap { depth[$0] }.max().map { $0 + 1 } ?? 0
            for id in ids where remaining[id] != nil { remaining[id]?.remove(next) }
        }
        var layers: [[String]] = []
        for id in order {
            let level = depth[id] ?? 0
            while layers.count <= level { layers.append([]) }
            layers[level].append(id)
        }
        let graph = StepGraph(dependencies: dependencies, order: order, layers: layers)
        guard !remaining.isEmpty else { return (graph, [], []) }
        // Find the cycles among what is left; everything else left is stuck behind one.
        var cycles: [[String]] = []
        var inCycle = Set<String>()
        for start in ids where remaining[start] != nil && !inCycle.contains(start) {
            var path: [String] = []
            var current = start
            var visited: [String: Int] = [:]
            while remaining[current] != nil, visited[current] == nil {
                visited[current] = path.count
                path.append(current)
                guard let next = ids.first(where: { remaining[current]?.contains($0) == true }) else { break }
                current = next
            }
            if let cycleStart = visited[current] {
                let cycle = Array(path[cycleStart...])
                if !cycle.contains(where: inCycle.contains) {
                    cycles.append(cycle)
                    inCycle.formUnion(cycle)
                }
            }
        }
        let stuck = ids.filter { remaining[$0] != nil && !inCycle.contains($0) }
        return (graph, cycles, stuck)
    }
}
