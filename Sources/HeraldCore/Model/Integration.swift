import Foundation

/// A configured instance of a provider in an environment.
public struct Integration: Sendable, Hashable {
    public var id: String
    public var environmentId: String
    public var providerId: String
    public var channel: Channel
    public var name: String
    /// Unique slug within the environment; immutable after creation.
    public var identifier: String
    public var active: Bool
    public var primary: Bool
    /// Decrypted credentials. Never logged: ``description`` lists only their names.
    public var credentials: IntegrationCredentials
    /// Tenant conditions (Novu `StepFilterDto[]`), kept as raw JSON.
    public var conditions: String
    /// Novu `configurations`, kept as raw JSON.
    public var configurations: String
    public var createdAt: Date
    public var updatedAt: Date

    public init(
        id: String, environmentId: String, providerId: String, channel: Channel, name: String, identifier: String,
        active: Bool = true, primary: Bool = false, credentials: IntegrationCredentials = [:], conditions: String = "[]",
        configurations: String = "{}", createdAt: Date, updatedAt: Date
    ) {
        self.id = id
        self.environmentId = environmentId
        self.providerId = providerId
        self.channel = channel
        self.name = name
        self.identifier = identifier
        self.active = active
        self.primary = primary
        self.credentials = credentials
        self.conditions = conditions
        self.configurations = configurations
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

extension Integration: CustomStringConvertible {
    public var description: String {
        "Integration(\(id), \(providerId), \(identifier), active: \(active), credentials: \(credentials.fields.keys.sorted()))"
    }
}

/// The credential fields of an integration (Novu `CredentialsDto`): a JSON object whose values are strings,
/// numbers or booleans. Its description never shows a value.
public struct IntegrationCredentials: Sendable, Hashable, ExpressibleByDictionaryLiteral, CustomStringConvertible {
    public var fields: [String: JSONValue]

    public init(_ fields: [String: JSONValue]) { self.fields = fields }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.fields = Dictionary(elements, uniquingKeysWith: { $1 })
    }

    public subscript(_ name: String) -> JSONValue? {
        get { fields[name] }
        set { fields[name] = newValue }
    }

    /// The value of a string field.
    public func string(_ name: String) -> String? { fields[name]?.stringValue }

    public var description: String { "IntegrationCredentials(\(fields.keys.sorted()))" }
}
