import Foundation
import HeraldCore
import HeraldEngine
import HeraldStore
import HeraldWorkflow
import Hummingbird

/// Novu's trigger API (`docs/wire-compatibility.md` §Novu triggers): trigger, bulk, broadcast, cancel. Everything is validated
/// before anything is committed; a 201 means the trigger is in the database.
struct EventRoutes {
    let runtime: Runtime

    static let maxBulkEvents = 100

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.post("/v1/events/trigger") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.jsonValue(context: context)
            let command = try validate(body, broadcast: false, prefix: "")
            let receipts = try await accept(environmentId: environment.id, [command])
            return JSONResponse.data(receipts[0].json, status: .created)
        }
        group.post("/v1/events/trigger/bulk") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.jsonValue(context: context)
            guard case .array(let events)? = body.objectValue?["events"] else {
                throw APIError.invalidField("events", "events must be an array of trigger requests")
            }
            guard !events.isEmpty, events.count <= Self.maxBulkEvents else {
                throw APIError.invalidField("events", "events must contain 1–\(Self.maxBulkEvents) triggers")
            }
            var commands: [TriggerCommand] = []
            for (index, event) in events.enumerated() {
                commands.append(try validate(event, broadcast: false, prefix: "events[\(index)]."))
            }
            let receipts = try await accept(environmentId: environment.id, commands)
            return JSONResponse.data(.array(receipts.map(\.json)), status: .created)
        }
        group.post("/v1/events/trigger/broadcast") { request, context in
            let environment = try context.requireEnvironment()
            let body = try await request.jsonValue(context: context)
            let command = try validate(body, broadcast: true, prefix: "")
            let receipts = try await accept(environmentId: environment.id, [command])
            return JSONResponse.data(receipts[0].json, status: .created)
        }
        group.delete("/v1/events/trigger/:transactionId") { _, context in
            let environment = try context.requireEnvironment()
            let transactionId = try context.parameters.require("transactionId")
            let canceled = try await runtime.engine.cancel(environmentId: environment.id, transactionId: transactionId)
            return JSONResponse.data(.bool(canceled))
        }
    }

    private func validate(_ body: JSONValue, broadcast: Bool, prefix: String) throws -> TriggerCommand {
        do {
            return try runtime.validator.validate(body, broadcast: broadcast, prefix: prefix)
        } catch {
            throw reject(error)
        }
    }

    private func accept(environmentId: String, _ commands: [TriggerCommand]) async throws -> [TriggerReceipt] {
        do {
            return try await runtime.intake.accept(environmentId: environmentId, commands: commands)
        } catch let rejection as TriggerRejection {
            throw reject(rejection)
        }
    }

    /// A rejection in Novu's error bodies, counted by reason.
    func reject(_ rejection: TriggerRejection) -> APIError {
        switch rejection {
        case .workflowNotFound(let name):
            runtime.metrics.triggersRejected.increment("workflow_not_found")
            return APIError.invalidField(
                "name", "workflow_not_found: no workflow has the trigger identifier '\(name)'", value: .string(name))
        case .payloadInvalid(let violations):
            runtime.metrics.triggersRejected.increment("payload_validation")
            var error = APIError(.badRequest, "Payload validation failed")
            error.extraFields = [
                "type": "PAYLOAD_VALIDATION_ERROR",
                "errors": .array(
                    violations.map { violation in
                        var entry: [String: JSONValue] = [
                            "field": .string(violation.field), "message": .string(violation.message),
                            "schemaPath": .string(violation.schemaPath),
                        ]
                        entry["value"] = violation.value ?? .null
                        return .object(entry)
                    }),
            ]
            return error
        case .invalid(let errors, let values):
            runtime.metrics.triggersRejected.increment("invalid_request")
            let message = errors.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.joined(separator: "; "))" }.joined(separator: ", ")
            return APIError(
                .unprocessableContent, message,
                fieldErrors: errors.mapValues { APIError.FieldError(messages: $0) }.merging(
                    values.reduce(into: [:]) { result, pair in
                        result[pair.key] = APIError.FieldError(messages: errors[pair.key] ?? [], value: pair.value)
                    },
                    uniquingKeysWith: { $1 }))
        case .transactionConflict(let transactionId):
            runtime.metrics.triggersRejected.increment("transaction_conflict")
            return APIError.invalidField(
                "transactionId",
                "transactionId '\(transactionId)' was already used by a different request; use a new transactionId (same body replays)",
                value: .string(transactionId))
        }
    }
}
