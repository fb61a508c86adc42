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
            Serves the webhook receivers under /hooks/<name> and the push services (Google OAuth + FCM, APNs, Web Push,
            Expo, HMS, OneSignal, Pusher Beams, Pushpad) with their dev accounts, on a plain HTTP listener and on an
            HTTP/2 TLS listener whose CA is written to --ca-file (give that file to Herald as HERALD_CA_FILE). The control
            API lives under /_control. Prints `simulator listening on http://HOST:PORT` and
            `simulator tls on https://HOST:PORT` once bound.
            """
    )

    @Option(help: "Bind address.") var host = "127.0.0.1"
    @Option(help: "Port; 0 picks a free one.") var port = 0
    @Option(help: "TLS (HTTP/2) port; 0 picks a free one.") var tlsPort = 0
    @Option(help: "Where to write the simulator's CA certificate (PEM).") var caFile = "herald-simulator-ca.pem"

    func run() async throws {
        let logger = try makeLogger(level: nil)
        let simulator = try Simulator()
        try simulator.identity.writeCA(to: caFile)
        try await simulator.run(host: host, port: port, tlsPort: tlsPort, logger: logger) { endpoints in
            let lines = [
                "simulator listening on \(endpoints.plain)", "simulator tls on \(endpoints.tls)",
                "simulator mutual-tls on \(endpoints.mutualTLS)",
                "simulator smtp on \(host):\(endpoints.smtpPort) (STARTTLS) and \(host):\(endpoints.smtpsPort) (TLS)",
            ]
            FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        }
    }
}
