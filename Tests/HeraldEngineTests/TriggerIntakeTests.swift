import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldTestSupport
import HeraldWorkflow
import SQLKit
import Testing

/// Group commit isolation: triggers that arrive together share one transaction, and a request the database refuses
/// must fail alone — never with another request's error, never taking the others down with it.
@Suite("Trigger intake")
struct TriggerIntakeTests {
    static let workflow = """
        workflow: ping
        steps:
          - id: push
            type: push
            body: "ping"
        """

    static func validator() -> TriggerValidator {
        let registry = WorkflowRegistry()
        _ = registry.update([(path: "ping.yaml", contents: workflow)])
        return TriggerValidator(workflows: registry, policy: .strict)
    }

    static func command(_ validator: TriggerValidator, transactionId: String, payload: JSONValue = [:]) throws -> TriggerCommand {
        try validator.validate(["name": "ping", "to": "ann", "payload": payload, "transactionId": .string(transactionId)])
    }

    /// A database trigger refuses one transaction id: the stand-in for any constraint violation that only the database
    /// finds (validation passed).
    static func poison(_ store: SQLStore, backend: Backend) async throws {
        try await store.transaction { session in
            switch backend {
            case .sqlite:
                try await session.db.raw(
                    """
                    CREATE TRIGGER poison BEFORE INSERT ON events WHEN NEW.transaction_id = 'poison'
                    BEGIN SELECT RAISE(ABORT, 'poisoned transaction id'); END
                    """
                ).run()
            case .postgres:
                try await session.db.raw(
                    """
                    CREATE FUNCTION poison() RETURNS trigger AS $$
                    BEGIN IF NEW.transaction_id = 'poison' THEN RAISE EXCEPTION 'poisoned transaction id'; END IF; RETURN NEW; END
                    $$ LANGUAGE plpgsql
                    """
                ).run()
                try await session.db.raw("CREATE TRIGGER poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION poison()").run()
            }
        }
    }

    @Test("a request the database refuses fails alone; the rest of its group commits", arguments: Backend.available)
    func refusedRequestFailsAlone(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let environment = try await store.transaction { try await $0.createEnvironment(named: "intake") }
            try await Self.poison(store, backend: backend)
            let validator = Self.validator()
            let metrics = EngineMetrics()
            let intake = TriggerIntake(store: store, validator: validator, metrics: metrics)
            // 60 concurrent requests: while the first commit is in flight the others queue and share the next one.
            let ids = (0..<60).map { $0 == 30 ? "poison" : "tx-\($0)" }
            let results = await withTaskGroup(of: (String, Bool).self) { group in
                for id in ids {
                    let command = try! Self.command(validator, transactionId: id)
                    group.addTask {
                        do {
                            let receipts = try await intake.accept(environmentId: environment.id, commands: [command])
                            return (id, receipts.map(\.transactionId) == [id])
                        } catch {
                            return (id, false)
                        }
                    }
                }
                return await group.reduce(into: [String: Bool]()) { $0[$1.0] = $1.1 }
            }
            #expect(results["poison"] == false)
            #expect(results.filter { $0.key != "poison" && !$0.value }.keys.sorted() == [])
            let stored = try await store.read {
                try await $0.events(environmentId: environment.id, transactionIds: ids)
            }
            #expect(stored.count == 59)
            #expect(stored["poison"] == nil)
            // The poisoned request shared a group with others, which was split: proof the isolation path ran.
            #expect(metrics.triggerGroupSplits.value() >= 1)
        }
    }

    @Test(
        "requests of one group reusing a transaction id: the same body replays, another body conflicts, one event is stored",
        arguments: Backend.available)
    func reuseWithinGroup(_ backend: Backend) async throws {
        try await withStore(backend) { store, _ in
            let environment = try await store.transaction { try await $0.createEnvironment(named: "reuse") }
            let validator = Self.validator()
            let intake = TriggerIntake(store: store, validator: validator, metrics: EngineMetrics())
            // 40 concurrent requests, so that they share groups (the group writes its events at its end): ten copies
            // of one request, ten of another body under the same transaction id, and twenty bystanders.
            let same = try Self.command(validator, transactionId: "shared", payload: ["n": 1])
            let other = try Self.command(validator, transactionId: "shared", payload: ["n": 2])
            let commands = (0..<40).map { index in
                index % 4 == 0 ? same : index % 4 == 1 ? other : try! Self.command(validator, transactionId: "by-\(index)")
            }
            let outcomes = await withTaskGroup(of: (TriggerCommand, Bool).self) { group in
                for command in commands {
                    group.addTask {
                        let accepted = (try? await intake.accept(environmentId: environment.id, commands: [command])) != nil
                        return (command, accepted)
                    }
                }
                return await group.reduce(into: [(TriggerCommand, Bool)]()) { $0.append($1) }
            }
            let shared = outcomes.filter { $0.0.transactionId == "shared" }
            let winners = Set(shared.filter(\.1).map(\.0.requestHash))
            // Whichever body committed first: all of its copies succeed (replays), all of the other's conflict.
            #expect(winners.count == 1)
            #expect(shared.filter(\.1).count == 10)
            #expect(outcomes.filter { $0.0.transactionId != "shared" }.allSatisfy { $0.1 })
            let stored = try await store.read {
                try await $0.events(environmentId: environment.id, transactionIds: commands.map(\.transactionId))
            }
            #expect(stored.count == 21)
            #expect(stored["shared"].map { winners.contains($0.requestHash) } == true)
        }
    }

    @Test(
        "two processes racing on one transaction id: one commits, the other replays or conflicts, bystanders commit",
        arguments: Backend.available)
    func racingProcesses(_ backend: Backend) async throws {
        let cipher = CredentialCipher(current: .random())
        try await withStore(backend, cipher: cipher) { store, url in
            let environment = try await store.transaction { try await $0.createEnvironment(named: "race") }
            let other = try await SQLStore.open(url, cipher: cipher, logger: testLogger)
            try await other.withRunning { other in
                let validator = Self.validator()
                let first = TriggerIntake(store: store, validator: validator, metrics: EngineMetrics())
                let second = TriggerIntake(store: other, validator: validator, metrics: EngineMetrics())
                for round in 0..<5 {
                    let shared = "shared-\(round)"
                    // Each intake gets the shared id (different payloads: a conflict, not a replay) among bystanders.
                    let outcomes = await withTaskGroup(of: (String, Int, Bool).self) { group in
                        for (side, intake) in [(0, first), (1, second)] {
                            for index in 0..<20 {
                                let id = index == 10 ? shared : "r\(round)-s\(side)-\(index)"
                                let command = try! Self.command(validator, transactionId: id, payload: ["side": .number(Double(side))])
                                group.addTask {
                                    do {
                                        _ = try await intake.accept(environmentId: environment.id, commands: [command])
                                        return (id, side, true)
                                    } catch {
                                        return (id, side, false)
                                    }
                                }
                            }
                        }
                        return await group.reduce(into: [(String, Int, Bool)]()) { $0.append($1) }
                    }
                    let bystandersFailed = outcomes.filter { $0.0 != shared && !$0.2 }
                    #expect(bystandersFailed.isEmpty, "round \(round): bystanders failed: \(bystandersFailed.map(\.0))")
                    let sharedAccepted = outcomes.filter { $0.0 == shared && $0.2 }
                    // A conflicting reuse is refused (or asked to retry); exactly one of the two bodies is stored.
                    #expect(sharedAccepted.count <= 1, "round \(round): both bodies of \(shared) accepted")
                    let stored = try await store.read {
                        try await $0.events(environmentId: environment.id, transactionIds: outcomes.map(\.0))
                    }
                    #expect(stored.count == 40 - 1, "round \(round): \(stored.count) events stored")
                }
            }
        }
    }
}
