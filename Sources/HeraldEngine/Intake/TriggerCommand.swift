import Crypto
import Foundation
import HeraldCore
import HeraldWorkflow

/// A validated trigger, ready to commit.
public struct TriggerCommand: Sendable {
    public var workflowId: String
    /// Normalised recipients: `{"type":"Subscriber","subscriberId":…,…}`, `{"type":"Topic","topicKey":…,"exclude":[…]}`
    /// or `{"type":"Broadcast"}`.
    public var recipients: [JSONValue]
    /// The payload with the schema's defaults applied.
    public var payload: JSONValue
    public var overrides: JSONValue
    public var transactionId: String
    /// Whether Herald made the transaction id up (the request had none): a fresh UUID cannot name a committed event,
    /// so intake does not look it up.
    public var transactionIdGenerated = false
    public var actor: JSONValue?
    public var tenant: JSONValue?
    /// SHA-256 of the canonical request body: a repeat with the same transaction id must match it.
    public var requestHash: String

    /// The keys of the topics among the recipients.
    var topicKeys: [String] { recipients.compactMap { $0.objectValue?["topicKey"]?.stringValue } }
}

/// Why a trigger is refused before anything is committed.
public enum TriggerRejection: Error, Sendable {
    /// No workflow has this trigger identifier (Novu: 422 `workflow_not_found`).
    case workflowNotFound(String)
    /// The payload does not match the workflow's schema (Novu: 400 `PAYLOAD_VALIDATION_ERROR`).
    case payloadInvalid([SchemaViolation])
    /// A field of the request is malformed: field path → messages (Novu: 422 `errors`).
    case invalid([String: [String]], values: [String: JSONValue])
    /// The transaction id was used before with a different request (422, never 409: the SDK retries 409s).
    case transactionConflict(String)
}

/// Parses and validates trigger requests against the live workflows (docs/architecture.md §Engine). Everything that can be checked
/// without the database is checked here, and all problems of a request are reported together.
public struct TriggerValidator: Sendable {
    public static let maxRecipients = 100
    public static let maxTransactionIdLength = 256

    let workflows: WorkflowRegistry
    /// Vets Web Push endpoints of just-in-time tokens.
    let policy: OutboundURLPolicy

    public init(workflows: WorkflowRegistry, policy: OutboundURLPolicy) {
        self.workflows = workflows
        self.policy = policy
    }

    /// Validates one trigger body (`POST /v1/events/trigger`). With `broadcast`, `to` is not taken and `payload`
    /// is required. `prefix` names the request in field paths (`events[3].`).
    public func validate(_ body: JSONValue, broadcast: Bool = false, prefix: String = "") throws(TriggerRejection) -> TriggerCommand {
        guard case .object(let object) = body else {
            throw .invalid(["\(prefix)body": ["the request body must be a JSON object"]], values: [:])
        }
        var errors: [String: [String]] = [:]
        var values: [String: JSONValue] = [:]
        func fail(_ field: String, _ message: String, _ value: JSONValue? = nil) {
            errors["\(prefix)\(field)", default: []].append(message)
            if let value { values["\(prefix)\(field)"] = value }
        }

        guard case .string(let name)? = object["name"], !name.isEmpty else {
            fail("name", "name must be the workflow's trigger identifier (a non-empty string)", object["name"])
            throw .invalid(errors, values: values)
        }
        guard let workflow = workflows.workflow(name) else { throw .workflowNotFound(name) }

        var recipients: [JSONValue] = []
        if broadcast {
            recipients = [["type": "Broadcast"]]
        } else if let to = object["to"] {
            let entries: [JSONValue] = if case .array(let items) = to { items } else { [to] }
            if entries.isEmpty { fail("to", "to must name at least one recipient") }
            if entries.count > Self.maxRecipients {
                fail("to", "Maximum number of recipients can be \(Self.maxRecipients)")
            }
            for (index, entry) in entries.enumerated() {
                switch Self.recipient(entry, policy: policy) {
                case .success(let recipient): recipients.append(recipient)
                case .failure(let error): fail("to[\(index)]", error.message, entry)
                }
            }
        } else {
            fail("to", "to is required")
        }

        var payload = object["payload"] ?? .object([:])
        if payload == .null { payload = .object([:]) }
        if broadcast, object["payload"] == nil { fail("payload", "payload is required for a broadcast") }
        if case .object = payload {} else { fail("payload", "payload must be an object", payload) }

        var overrides = object["overrides"] ?? .object([:])
        if overrides == .null { overrides = .object([:]) }
        if case .object = overrides {} else { fail("overrides", "overrides must be an object", overrides) }

        var transactionId = UUID().uuidString.lowercased()
        var transactionIdGenerated = true
        switch object["transactionId"] {
        case nil, .null?: break
        case .string(let text)? where !text.isEmpty && text.utf8.count <= Self.maxTransactionIdLength:
            transactionId = text
            transactionIdGenerated = false
        case let other?: fail("transactionId", "transactionId must be a string of 1–\(Self.maxTransactionIdLength) characters", other)
        }

        var actor: JSONValue?
        switch object["actor"] {
        case nil, .null?: break
        case .string(let id)? where !id.isEmpty: actor = .string(id)
        case let value?:
            if case .success(let recipient) = Self.recipient(value, policy: policy), recipient.objectValue?["type"] == "Subscriber" {
                actor = recipient
            } else {
                fail("actor", "actor must be a subscriber id or a subscriber object with subscriberId", value)
            }
        }

        var tenant: JSONValue?
        switch object["tenant"] {
        case nil, .null?: break
        case .string(let identifier)?: tenant = ["identifier": .string(identifier)]
        case .object(let fields)?: tenant = .object(fields)
        case let other?: fail("tenant", "tenant must be an identifier or an object", other)
        }

        if !errors.isEmpty { throw .invalid(errors, values: values) }

        if let schema = workflow.payloadSchema {
            let violations = schema.validate(payload).map { violation in
                var violation = violation
                if !prefix.isEmpty { violation.field = prefix + "payload" + (violation.field.isEmpty ? "" : ".\(violation.field)") }
                return violation
            }
            if !violations.isEmpty { throw .payloadInvalid(violations) }
            payload = schema.applyingDefaults(to: payload)
        }

        let digest = SHA256.hash(data: Data(body.jsonString().utf8))
        return TriggerCommand(
            workflowId: workflow.id, recipients: recipients, payload: payload, overrides: overrides, transactionId: transactionId,
            transactionIdGenerated: transactionIdGenerated, actor: actor, tenant: tenant, requestHash: Hex.encode(Array(digest)))
    }

    /// Whether the workflow can run: active and with steps (Novu answers 201 with these statuses, not an error).
    public func status(of workflowId: String) -> String? {
        guard let workflow = workflows.workflow(workflowId) else { return nil }
        if !workflow.active { return "trigger_not_active" }
        if workflow.steps.isEmpty { return "no_workflow_steps_defined" }
        return nil
    }

    /// A normalised recipient, or why it is malformed.
    static func recipient(_ value: JSONValue, policy: OutboundURLPolicy) -> Result<JSONValue, RecipientError> {
        switch value {
        case .string(let id):
            guard !id.isEmpty, id.utf8.count <= 256 else { return .failure("a subscriber id must be 1–256 characters") }
            return .success(["type": "Subscriber", "subscriberId": .string(id)])
        case .object(var object):
            let type = object["type"]?.stringValue
            if type == "Topic" || (type == nil && object["topicKey"] != nil) {
                guard case .string(let key)? = object["topicKey"], !key.isEmpty else { return .failure("a topic needs a topicKey") }
                var exclude: [JSONValue] = []
                switch object["exclude"] {
                case nil, .null?: break
                case .array(let items)?:
                    guard items.allSatisfy({ $0.stringValue != nil }) else { return .failure("exclude must list subscriber ids") }
                    exclude = items
                default: return .failure("exclude must list subscriber ids")
                }
                return .success(["type": "Topic", "topicKey": .string(key), "exclude": .array(exclude)])
            }
            guard type == nil || type == "Subscriber" else { return .failure("type must be Subscriber or Topic") }
            guard case .string(let id)? = object["subscriberId"], !id.isEmpty, id.utf8.count <= 256 else {
                return .failure("a subscriber object needs a subscriberId (1–256 characters)")
            }
            for field in ["firstName", "lastName", "email", "phone", "avatar", "locale", "timezone"] {
                if let value = object[field], value != .null, value.stringValue == nil {
                    return .failure(RecipientError(stringLiteral: "\(field) must be a string"))
                }
            }
            if let phone = object["phone"]?.stringValue, !PhoneNumber.isE164(phone) {
                return .failure(RecipientError(stringLiteral: "phone must be a valid phone number in E.164 format (e.g. +15550001111)"))
            }
            if let channels = object["channels"], channels != .null {
                guard case .array(let entries) = channels else { return .failure("channels must be an array") }
                for entry in entries {
                    guard case .object(let channel) = entry, let provider = channel["providerId"]?.stringValue else {
                        return .failure("every channel needs a providerId")
                    }
                    guard let kind = ProviderCatalog.channel(of: provider), kind == .push || kind == .chat else {
                        return .failure(RecipientError(stringLiteral: "channels[].providerId \(provider) is not a push or chat provider"))
                    }
                    guard case .object(let credentials)? = channel["credentials"] else {
                        return .failure("every channel needs credentials")
                    }
                    if let tokens = credentials["deviceTokens"], tokens != .null {
                        guard case .array(let items) = tokens, items.allSatisfy({ $0.stringValue != nil }) else {
                            return .failure("credentials.deviceTokens must be an array of strings")
                        }
                        for item in items {
                            if let problem = DeviceTokenRules.problem(provider: provider, token: item.stringValue!, policy: policy) {
                                return .failure(RecipientError(stringLiteral: "credentials.deviceTokens: \(problem)"))
                            }
                        }
                    }
                }
            }
            object["type"] = "Subscriber"
            return .success(.object(object))
        default:
            return .failure("a recipient is a subscriber id, a subscriber object or a topic")
        }
    }
}

/// A recipient problem, as a message.
struct RecipientError: Error, ExpressibleByStringLiteral {
    var message: String
    init(stringLiteral value: String) { message = value }
}
