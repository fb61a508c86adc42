import Foundation
import HeraldTestSupport
import Testing

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs the real `herald` binary (built beside the test bundle) the way an operator would.
@Suite("herald command line", .serialized)
struct CLITests {
    /// The `herald` executable next to the test bundle.
    static var binary: URL {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        if directory.lastPathComponent.hasSuffix(".xctest") { directory.deleteLastPathComponent() }
        return directory.appendingPathComponent("herald")
    }

    /// A finished run: exit status, stdout, stderr.
    struct Run {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:], in directory: URL) throws -> Run {
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("herald-cli-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("serve starts on SQLite in the current directory, prints the key once, answers readyz, and stops on SIGTERM")
    func serveLifecycle() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let process = Process()
        process.executableURL = Self.binary
        process.arguments = ["serve", "--port", "0"]
        process.currentDirectoryURL = directory
        var environment = ProcessInfo.processInfo.environment
        environment["HERALD_API_KEY"] = nil
        environment["HERALD_DATABASE_URL"] = nil
        process.environment = environment
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let lines = LineCollector()
        out.fileHandleForReading.readabilityHandler = { lines.append(stdout: $0.availableData) }
        err.fileHandleForReading.readabilityHandler = { lines.append(stderr: $0.availableData) }
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let port = try await lines.waitForPort(timeout: .seconds(60))
        let key = try #require(lines.stdoutLines.last, "the generated key is printed")
        #expect(key.hasPrefix("hk_"))
        #expect(lines.stdoutLines.first?.contains("development") == true)
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("herald.sqlite").path))

        let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/readyz")!)
        #expect((response as? HTTPURLResponse)?.statusCode == 200)
        #expect(String(decoding: data, as: UTF8.self).contains("ready"))
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/v2/subscribers/nobody")!)
        request.setValue("ApiKey \(key)", forHTTPHeaderField: "Authorization")
        let (_, authenticated) = try await URLSession.shared.data(for: request)
        #expect((authenticated as? HTTPURLResponse)?.statusCode == 404)

        // SQLite allows one worker process: a second serve on the same database stops with a clear error.
        let second = Process()
        second.executableURL = Self.binary
        second.arguments = ["serve", "--port", "0"]
        second.currentDirectoryURL = directory
        second.environment = environment
        let secondErr = Pipe()
        second.standardError = secondErr
        second.standardOutput = Pipe()
        try second.run()
        let secondDeadline = ContinuousClock.now + .seconds(30)
        while second.isRunning, ContinuousClock.now < secondDeadline { try await Task.sleep(for: .milliseconds(50)) }
        if second.isRunning { second.terminate() }
        #expect(second.terminationStatus != 0, "a second worker process on one SQLite database is refused")
        let secondText = String(decoding: secondErr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(secondText.contains("another Herald process runs queue workers"), "\(secondText)")

        process.terminate()  // SIGTERM
        let deadline = ContinuousClock.now + .seconds(15)
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!process.isRunning, "stopped within 15 s of SIGTERM")
        #expect(process.terminationStatus == 0)
        #expect(!lines.stderrText.contains(key), "the key is never logged")

        // A second start on the same database creates nothing and prints no key.
        let again = try Self.run(["env", "list"], in: directory)
        #expect(again.status == 0)
        #expect(again.stdout.contains("development"))
    }

    @Test("env and keys commands manage environments and keys")
    func envAndKeys() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let created = try Self.run(["env", "create", "production"], in: directory)
        #expect(created.status == 0, "\(created.stderr)")
        let key = try #require(created.stdout.split(separator: "\n").last?.split(separator: " ").last.map(String.init))
        #expect(key.hasPrefix("hk_"))
        let listed = try Self.run(["keys", "list", "--env", "production"], in: directory)
        #expect(listed.status == 0)
        #expect(listed.stdout.contains(String(key.prefix(10))))
        #expect(!listed.stdout.contains(key), "list shows only prefixes")
        let revoked = try Self.run(["keys", "revoke", String(key.prefix(10)), "--env", "production"], in: directory)
        #expect(revoked.status == 0, "\(revoked.stderr)")
        #expect(try Self.run(["keys", "list", "--env", "production"], in: directory).stdout.contains("revoked"))
        let duplicate = try Self.run(["env", "create", "production"], in: directory)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr == "herald: environment 'production' already exists\n")
        let missing = try Self.run(["keys", "list", "--env", "nope"], in: directory)
        #expect(missing.status == 1)
        #expect(missing.stderr.hasPrefix("herald: no environment named 'nope'"))
    }

    @Test("a bad flag or an unreachable database is one clear line and a non-zero exit")
    func failures() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let unreachable = try Self.run(
            ["migrate", "--database", "postgres://herald:secret-pw@127.0.0.1:1/herald"], environment: ["HERALD_ENCRYPTION_KEY": ""],
            in: directory
        )
        #expect(unreachable.status == 1)
        #expect(unreachable.stderr.hasPrefix("herald: "))
        #expect(unreachable.stderr.split(separator: "\n").count == 1, "\(unreachable.stderr)")
        #expect(!unreachable.stderr.contains("secret-pw"))

        let key = Data((0..<32).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        let refused = try Self.run(
            ["migrate", "--database", "postgres://herald:secret-pw@127.0.0.1:1/herald"], environment: ["HERALD_ENCRYPTION_KEY": key],
            in: directory
        )
        #expect(refused.status == 1)
        #expect(refused.stderr.hasPrefix("herald: cannot connect to PostgreSQL at 127.0.0.1:1/herald"), "\(refused.stderr)")
        #expect(refused.stderr.split(separator: "\n").count == 1)
        #expect(!refused.stderr.contains("secret-pw"))

        let badFlag = try Self.run(["serve", "--no-such-flag"], in: directory)
        #expect(badFlag.status != 0)
        #expect(badFlag.stderr.contains("--no-such-flag"))

        let badPort = try Self.run(["serve", "--port", "70000"], in: directory)
        #expect(badPort.status == 1)
        #expect(badPort.stderr == "herald: port must be 0–65535\n")

        let help = try Self.run(["serve", "--help"], in: directory)
        #expect(help.status == 0)
        for documented in [
            "HERALD_HOST", "HERALD_PORT", "HERALD_DATABASE_URL", "HERALD_WORKFLOWS", "HERALD_API_KEY", "HERALD_ENCRYPTION_KEY",
            "HERALD_ROLE",
        ] {
            #expect(help.stdout.contains(documented), "serve --help documents \(documented)")
        }
    }

    @Test("validate reports findings with exit codes 0, 1 and 2, as text or JSON, and graph prints the step graph")
    func validateAndGraph() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let good =
            "workflow: good\nsteps:\n  - id: a\n    type: sms\n    body: \"Hi {{subscriber.firstName}}\"\n  - id: b\n    type: push\n    needs: []\n    title: hi\n"
        try good.write(to: directory.appendingPathComponent("good.yaml"), atomically: true, encoding: .utf8)
        let clean = try Self.run(["validate", "good.yaml"], in: directory)
        #expect(clean.status == 0)
        #expect(clean.stdout == "1 file checked: 0 errors, 0 warnings\n")

        let warning = "workflow: other-name\nsteps:\n  - id: a\n    type: sms\n    body: hi\n"
        try warning.write(to: directory.appendingPathComponent("warn.yaml"), atomically: true, encoding: .utf8)
        #expect(try Self.run(["validate", "warn.yaml"], in: directory).status == 0)
        let strict = try Self.run(["validate", "--strict", "warn.yaml"], in: directory)
        #expect(strict.status == 1)
        #expect(
            strict.stdout.hasPrefix(
                "warn.yaml:1:11: warning: workflow id 'other-name' differs from the file name 'warn' [identifier-mismatch]\n"))

        try FileManager.default.createDirectory(at: directory.appendingPathComponent("nested"), withIntermediateDirectories: true)
        try "workflow: bad\nsteps:\n  - id: a\n    type: sms\n".write(
            to: directory.appendingPathComponent("nested/bad.yml"), atomically: true, encoding: .utf8)
        let json = try Self.run(["validate", "--format", "json", "."], in: directory)
        #expect(json.status == 1)
        let findings = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        #expect(findings.count == 2)
        #expect(findings.first?["file"] as? String == "./nested/bad.yml")
        #expect(findings.first?["rule"] as? String == "missing-content")
        #expect(findings.first?["line"] as? Int == 3)

        let missing = try Self.run(["validate", "nope/"], in: directory)
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("no such file or directory"))

        let graph = try Self.run(["graph", "good.yaml"], in: directory)
        #expect(graph.status == 0)
        #expect(
            graph.stdout
                == "flowchart TD\n    trigger((\"good\"))\n    s0[\"a · sms\"]\n    s1[\"b · push\"]\n    trigger --> s0\n    trigger --> s1\n"
        )
        let dot = try Self.run(["graph", "--format", "dot", "good.yaml"], in: directory)
        #expect(dot.stdout.hasPrefix("digraph \"good\" {"))
    }
}

/// Collects a child process's output lines as they arrive.
final class LineCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var stdoutBuffer = ""
    private var stderrBuffer = ""

    func append(stdout data: Data) {
        lock.withLock { stdoutBuffer += String(decoding: data, as: UTF8.self) }
    }

    func append(stderr data: Data) {
        lock.withLock { stderrBuffer += String(decoding: data, as: UTF8.self) }
    }

    var stdoutLines: [String] { lock.withLock { stdoutBuffer.split(separator: "\n").map(String.init) } }
    var stderrText: String { lock.withLock { stderrBuffer } }

    /// The port from the "listening" log line.
    func waitForPort(timeout: Duration) async throws -> Int {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let range = stderrText.range(of: #"address=http://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                let match = stderrText[range]
                if let port = Int(match.split(separator: ":").last ?? "") { return port }
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw CLIError(message: "server did not start: \(stderrText)")
    }
}

struct CLIError: Error, CustomStringConvertible {
    var message: String
    var description: String { message }
}
