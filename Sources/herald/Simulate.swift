import ArgumentParser
import Foundation
import HeraldCore
import HeraldSimulator
import Hummingbird
import Logging

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the provider emulators (HeraldSimulator) for tests, benchmarks and local development.",
        discussion: """
            Serves the webhook receivers under /hooks/<name> (signature checks, recording, fault programs) and the control
            API under /_control (faults, secrets, stats). Prints `simulator listening on http://HOST:PORT` once bound.
            """
    )

    @Option(help: "Bind address.") var host = "127.0.0.1"
    @Option(help: "Port; 0 picks a free one.") var port = 0

    func run() async throws {
        let logger = try makeLogger(level: nil)
        let simulator = Simulator()
        let host = self.host
        let application = simulator.application(host: host, port: port, logger: logger) { port in
            FileHandle.standardOutput.write(Data("simulator listening on http://\(host):\(port)\n".utf8))
        }
        try await application.runService()
    }
}
