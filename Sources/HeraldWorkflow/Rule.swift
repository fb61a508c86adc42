/// Every check of `herald validate`, with a stable id. `docs/workflow-rules.md` lists each with an example.
public struct Rule: Sendable, Hashable, CustomStringConvertible {
    /// Stable identifier shown in brackets after each message.
    public let id: String
    /// How bad a finding of this rule is.
    public let severity: Diagnostic.Severity
    /// One line on what the rule checks.
    public let summary: String

    public var description: String { id }

    // File and YAML
    public static let fileTooLarge = Rule(id: "file-too-large", severity: .error, summary: "workflow files are at most 256 KiB")
    public static let yamlSyntax = Rule(id: "yaml-syntax", severity: .error, summary: "the file is not well-formed YAML")
    public static let nestingTooDeep = Rule(id: "nesting-too-deep", severity: .error, summary: "YAML nesting is at most 64 levels")
    public static let aliasNotAllowed = Rule(id: "alias-not-allowed", severity: .error, summary: "YAML anchors and aliases are not allowed")
    public static let multipleDocuments = Rule(
        id: "multiple-documents", severity: .error, summary: "one workflow per file: no `---` documents after the first")
    public static let duplicateKey = Rule(id: "duplicate-key", severity: .error, summary: "a mapping repeats a key")
    public static let unknownKey = Rule(id: "unknown-key", severity: .error, summary: "a key the workflow language does not define")
    public static let wrongType = Rule(id: "wrong-type", severity: .error, summary: "a value of the wrong type (string, list, mapping, …)")
    public static let missingField = Rule(id: "missing-field", severity: .error, summary: "a required field is missing")
    // Workflow
    public static let invalidIdentifier = Rule(
        id: "invalid-identifier", severity: .error, summary: "workflow and step ids: letters, digits, '-' and '_'")
    public static let identifierMismatch = Rule(
        id: "identifier-mismatch", severity: .warning, summary: "the workflow id differs from the file name")
    public static let emptySteps = Rule(id: "empty-steps", severity: .error, summary: "a workflow needs at least one step")
    public static let invalidValue = Rule(id: "invalid-value", severity: .error, summary: "a value outside the allowed set or range")
    // Steps and graph
    public static let unknownStepType = Rule(
        id: "unknown-step-type", severity: .error, summary: "step types are push, chat, email, sms, delay, digest and throttle")
    public static let duplicateStepId = Rule(id: "duplicate-step-id", severity: .error, summary: "step ids are unique within a workflow")
    public static let missingContent = Rule(
        id: "missing-content", severity: .error,
        summary: "a channel step lacks its content (push: title or body; email: subject and body; sms, chat: body)")
    public static let unknownStep = Rule(id: "unknown-step", severity: .error, summary: "`needs` names a step that does not exist")
    public static let graphCycle = Rule(id: "graph-cycle", severity: .error, summary: "steps depend on each other in a cycle")
    public static let unreachableStep = Rule(
        id: "unreachable-step", severity: .error, summary: "a step can never run because it depends on a cycle")
    public static let selfDependency = Rule(id: "self-dependency", severity: .error, summary: "a step lists itself in `needs`")
    // Expressions
    public static let expressionSyntax = Rule(id: "expression-syntax", severity: .error, summary: "an `if:` condition does not parse")
    public static let expressionType = Rule(
        id: "expression-type", severity: .error, summary: "a condition compares or combines values of incompatible types")
    public static let unknownFunction = Rule(
        id: "unknown-function", severity: .error, summary: "functions are exists, len and startsWith, with their arities")
    public static let unknownRoot = Rule(
        id: "unknown-root", severity: .error, summary: "paths start with payload, subscriber, steps, tenant or workflow")
    public static let stepReference = Rule(
        id: "step-reference", severity: .error, summary: "`steps.<id>` must name a step that runs before this one")
    public static let unknownStepField = Rule(
        id: "unknown-step-field", severity: .error, summary: "step results are status, reason, delivered, failed, count and events")
    public static let unknownSubscriberField = Rule(
        id: "unknown-subscriber-field", severity: .warning,
        summary: "subscriber fields are subscriberId, firstName, lastName, email, phone, avatar, locale, timezone and data")
    public static let undeclaredPayload = Rule(
        id: "undeclared-payload", severity: .warning, summary: "a payload field the payload schema does not declare")
    // Templates
    public static let templateSyntax = Rule(id: "template-syntax", severity: .error, summary: "a Mustache template does not parse")
    public static let unknownVariable = Rule(
        id: "unknown-variable", severity: .warning, summary: "a template variable outside payload, subscriber, steps, tenant and workflow")
    // Schema, overrides, durations
    public static let invalidSchema = Rule(
        id: "invalid-schema", severity: .error, summary: "the payload schema is not a valid schema of the supported JSON-Schema subset")
    public static let unknownProvider = Rule(
        id: "unknown-provider", severity: .warning, summary: "an override for a provider id Herald does not know")
    public static let invalidDuration = Rule(
        id: "invalid-duration", severity: .error, summary: "durations look like 30s, 10m, 2h, 1d or 1h30m")
    // Preferences
    public static let unusedPreference = Rule(
        id: "unused-preference", severity: .warning, summary: "a preference for a channel the workflow has no step for")
    // Translations
    public static let missingTranslation = Rule(
        id: "missing-translation", severity: .error, summary: "a `{{t.<key>}}` the default locale's translations do not define")
    public static let untranslatedKey = Rule(
        id: "untranslated-key", severity: .warning,
        summary: "a `{{t.<key>}}` another locale does not translate (its subscribers get the default locale's text)")
    // Catalog
    public static let duplicateWorkflow = Rule(id: "duplicate-workflow", severity: .error, summary: "two files define the same workflow id")

    /// Every rule, in documentation order.
    public static let all: [Rule] = [
        fileTooLarge, yamlSyntax, nestingTooDeep, aliasNotAllowed, multipleDocuments, duplicateKey, unknownKey, wrongType, missingField,
        invalidIdentifier, identifierMismatch, emptySteps, invalidValue, unknownStepType, duplicateStepId, missingContent, unknownStep,
        graphCycle, unreachableStep, selfDependency, expressionSyntax, expressionType, unknownFunction, unknownRoot, stepReference,
        unknownStepField, unknownSubscriberField, undeclaredPayload, templateSyntax, unknownVariable, invalidSchema, unknownProvider,
        invalidDuration, unusedPreference, missingTranslation, untranslatedKey, duplicateWorkflow,
    ]
}
