import Foundation
import HeraldCore

/// The workflow front end: YAML text in, a runnable ``Workflow`` or every finding out.
///
/// Like a compiler front end it does not stop at the first problem: it reports every one it can find, each with a
/// rule id and a position. A workflow is returned only when there is no error (warnings are allowed).
public enum WorkflowParser {
    /// Parses and validates one file. `file` is used in diagnostics and for the id/file-name check.
    public static func parse(
        _ text: String, file: String, sharedTranslations: [String: [String: String]] = [:]
    ) -> (workflow: Workflow?, diagnostics: [Diagnostic]) {
        var loader = Loader(file: file)
        loader.translations = sharedTranslations
        let workflow = loader.load(text)
        let diagnostics = loader.sink.diagnostics.sorted()
        return (loader.sink.hasErrors ? nil : workflow, diagnostics)
    }

    static let workflowKeys = [
        "workflow", "name", "description", "tags", "active", "critical", "preferences", "payload", "window", "timezone", "locale",
        "translations", "steps",
    ]
    static let commonStepKeys = ["id", "type", "name", "needs", "if"]
    static let channelKeys = commonStepKeys + ["overrides", "integrations", "window"]
    static let stepKeys: [StepType: [String]] = [
        .push: channelKeys + ["title", "body", "data", "image", "sound", "badge", "ttl", "priority", "collapseKey"],
        .chat: channelKeys + ["body"],
        .email: channelKeys + ["subject", "body", "text", "from", "senderName"],
        .sms: channelKeys + ["body"],
        .delay: commonStepKeys + ["for", "until"],
        .digest: commonStepKeys + ["window", "key"],
        .throttle: commonStepKeys + ["limit", "window", "key"],
    ]
    static let subscriberFields = ["subscriberId", "firstName", "lastName", "email", "phone", "avatar", "locale", "timezone", "data"]
    static let stepResultFields: [String: StaticType?] = [
        "status": .string, "reason": .string, "delivered": .number, "failed": .number, "count": .number, "events": .array,
    ]
}

/// A shared translation file, `translations/<locale>.yaml` beside the workflows (docs/workflows.md §Translations): a
/// mapping of keys to texts (nested mappings make dotted keys). Returns the locale (from the file name, normalised),
/// the flattened texts, and every finding.
public enum TranslationFile {
    /// Whether `path` is a translation file: `<locale>.yaml` (or `.yml`) in a directory named `translations`.
    public static func isTranslationFile(_ path: String) -> Bool {
        let components = path.split(separator: "/")
        return components.count >= 2 && components[components.count - 2] == "translations"
    }

    public static func parse(_ text: String, file: String) -> (locale: String, texts: [String: String], diagnostics: [Diagnostic]) {
        var sink = DiagnosticSink(file: file)
        let name = (file as NSString).lastPathComponent
        let locale = Workflow.normalisedLocale(String(name.split(separator: ".").first ?? ""))
        guard let root = YAMLTree.parse(text, sink: &sink) else { return (locale, [:], sink.diagnostics.sorted()) }
        var loader = Loader(file: file)
        loader.sink = sink
        var texts: [String: String] = [:]
        if !locale.isEmpty, locale.count <= 35, locale.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) {
            loader.flattenTranslations(root, prefix: "", field: name, into: &texts)
        } else {
            loader.sink.error(.invalidValue, "'\(name)' is not named after a locale (en.yaml, pt-BR.yaml)", at: .start)
        }
        return (locale, texts, loader.sink.diagnostics.sorted())
    }
}

/// The closest candidate to `word` if it is plausibly a typo of it.
func suggestion(for word: String, among candidates: [String]) -> String? {
    func distance(_ a: [Character], _ b: [Character]) -> Int {
        var previous = Array(0...b.count)
        for (i, ca) in a.enumerated() {
            var current = [i + 1] + Array(repeating: 0, count: b.count)
            for (j, cb) in b.enumerated() {
                current[j + 1] = min(previous[j + 1] + 1, current[j] + 1, previous[j] + (ca == cb ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
    let lowered = Array(word.lowercased())
    let scored = candidates.map { ($0, distance(lowered, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
    guard let (best, score) = scored, score < word.count, score <= max(1, min(3, (word.count + 1) / 3)) || (score == 2 && word.count >= 3)
    else { return nil }
    return best
}

private struct Loader {
    var sink: DiagnosticSink
    let file: String
    var schema: PayloadSchema?
    var hasSchema = false
    var preferences = WorkflowPreferences()
    /// Where each channel of `preferences.channels` is named, for the check against the steps.
    var preferenceChannels: [(Channel, SourceLocation)] = []
    /// The workflow's `window:` and `timezone:`.
    var window: LocalTimeWindow?
    var timezone: String?
    /// The workflow's `locale:` (normalised) and `translations:` (flattened), read before the steps' templates.
    var locale = "en"
    var translations: [String: [String: String]] = [:]

    init(file: String) {
        self.file = file
        self.sink = DiagnosticSink(file: file)
    }

    // MARK: Workflow

    mutating func load(_ text: String) -> Workflow? {
        guard let root = YAMLTree.parse(text, sink: &sink) else { return nil }
        guard case .mapping(let pairs, _) = root else {
            sink.error(.wrongType, "a workflow file is a mapping with `workflow`, `steps`, …; found \(root.kindName)", at: root.location)
            return nil
        }
        let fields = keyed(pairs, allowed: WorkflowParser.workflowKeys, in: "workflow")

        var id = ""
        if let pair = fields["workflow"] {
            if let (text, location) = string(pair.value, field: "workflow") {
                id = text
                if !isIdentifier(text, allowDots: true) {
                    sink.error(
                        .invalidIdentifier,
                        "workflow id '\(text)' must be 1–128 characters of letters, digits, '-', '_' and '.', starting with a letter or digit",
                        at: location
                    )
                } else {
                    let stem = (file as NSString).lastPathComponent.split(separator: ".").first.map(String.init) ?? ""
                    if !stem.isEmpty, stem != text {
                        sink.warning(.identifierMismatch, "workflow id '\(text)' differs from the file name '\(stem)'", at: location)
                    }
                }
            }
        } else {
            sink.error(.missingField, "missing `workflow`: the trigger identifier (event name) of this workflow", at: root.location)
        }
        let name = fields["name"].flatMap { string($0.value, field: "name")?.0 } ?? id
        let description = fields["description"].flatMap { string($0.value, field: "description")?.0 }
        let tags = fields["tags"].flatMap { stringList($0.value, field: "tags") }?.map(\.0) ?? []
        let active = fields["active"].flatMap { bool($0.value, field: "active") } ?? true
        let critical = fields["critical"].flatMap { bool($0.value, field: "critical") } ?? false
        if let pair = fields["preferences"] { loadPreferences(pair.value) }
        if let pair = fields["window"] { window = sendWindow(pair.value, field: "window") }
        if let pair = fields["locale"], let (tag, _) = string(pair.value, field: "locale") { locale = Workflow.normalisedLocale(tag) }
        if let pair = fields["translations"] { loadTranslations(pair.value) }
        if let pair = fields["timezone"], let (name, location) = string(pair.value, field: "timezone") {
            if TimeZone(identifier: name) == nil {
                sink.error(.invalidValue, "timezone '\(name)' is not an IANA time zone name such as Europe/Paris", at: location)
            } else {
                timezone = name
            }
        }
        if let pair = fields["payload"] {
            hasSchema = true
            schema = SchemaParser.parse(pair.value, path: "payload", sink: &sink)
        }

        guard let stepsPair = fields["steps"] else {
            sink.error(.missingField, "missing `steps`: a workflow needs at least one step", at: root.location)
            return nil
        }
        guard case .sequence(let items, let stepsLocation) = stepsPair.value else {
            sink.error(.wrongType, "`steps` must be a list of steps, not \(stepsPair.value.kindName)", at: stepsPair.value.location)
            return nil
        }
        guard !items.isEmpty else {
            sink.error(.emptySteps, "`steps` is empty; a workflow needs at least one step", at: stepsLocation)
            return nil
        }
        return loadSteps(items, workflow: (id, name, description, tags, active, critical))
    }

    // MARK: Steps

    struct RawStep {
        var id: String
        var location: SourceLocation
        var needs: [String]?
        var fields: [String: YPair]
        var type: StepType?
        var name: String?
    }

    mutating func loadSteps(
        _ items: [YNode], workflow: (id: String, name: String, description: String?, tags: [String], active: Bool, critical: Bool)
    ) -> Workflow? {
        // Pass 1: ids, types, needs — everything the graph needs.
        var raws: [RawStep] = []
        var seenIds: [String: SourceLocation] = [:]
        for (index, item) in items.enumerated() {
            guard case .mapping(let pairs, let location) = item else {
                sink.error(
                    .wrongType, "each step is a mapping with `id` and `type`; step \(index + 1) is \(item.kindName)", at: item.location)
                continue
            }
            let all = Dictionary(pairs.map { ($0.key, $0) }, uniquingKeysWith: { first, _ in first })
            var type: StepType? = nil
            if let typePair = all["type"] {
                if let (text, typeLocation) = string(typePair.value, field: "type") {
                    type = StepType(rawValue: text)
                    if type == nil {
                        let hint = suggestion(for: text, among: StepType.allCases.map(\.rawValue)).map { "; did you mean '\($0)'?" } ?? ""
                        sink.error(
                            .unknownStepType, "unknown step type '\(text)' (push, chat, email, sms, delay, digest or throttle)\(hint)",
                            at: typeLocation)
                    }
                }
            } else {
                sink.error(
                    .missingField, "step \(index + 1) has no `type` (push, chat, email, sms, delay, digest or throttle)", at: location)
            }
            let allowed = type.flatMap { WorkflowParser.stepKeys[$0] } ?? Array(Set(WorkflowParser.stepKeys.values.flatMap { $0 }))
            let fields = keyed(pairs, allowed: allowed, in: type.map { "a \($0.rawValue) step" } ?? "a step")
            var id = "step-\(index + 1)"
            var idLocation = location
            if let idPair = fields["id"] {
                if let (text, textLocation) = string(idPair.value, field: "id") {
                    idLocation = textLocation
                    if isIdentifier(text, allowDots: false) {
                        id = text
                    } else {
                        sink.error(
                            .invalidIdentifier, "step id '\(text)' must be 1–64 letters, digits, '-' and '_', starting with a letter",
                            at: textLocation
                        )
                    }
                }
            } else {
                sink.error(.missingField, "step \(index + 1) has no `id`", at: location)
            }
            if let first = seenIds[id] {
                sink.error(.duplicateStepId, "duplicate step id '\(id)' (first used at line \(first.line))", at: idLocation)
                continue
            }
            seenIds[id] = idLocation
            var needs: [String]? = nil
            if let needsPair = fields["needs"], let list = stringList(needsPair.value, field: "needs") {
                needs = []
                for (need, needLocation) in list {
                    if need == id {
                        sink.error(.selfDependency, "step '\(id)' cannot wait for itself", at: needLocation)
                    } else if needs!.contains(need) {
                        sink.warning(.duplicateKey, "'\(need)' is listed twice in needs", at: needLocation)
                    } else {
                        needs!.append(need)
                    }
                }
            }
            let name = fields["name"].flatMap { string($0.value, field: "name")?.0 }
            raws.append(RawStep(id: id, location: idLocation, needs: needs, fields: fields, type: type, name: name))
        }
        let ids = Set(raws.map(\.id))
        for raw in raws {
            for need in raw.needs ?? [] where !ids.contains(need) {
                let location = raw.fields["needs"].map { needLocation(need, in: $0.value) } ?? raw.location
                let hint = suggestion(for: need, among: Array(ids)).map { "; did you mean '\($0)'?" } ?? ""
                sink.error(.unknownStep, "step '\(raw.id)' needs '\(need)', which is not a step of this workflow\(hint)", at: location)
            }
        }
        let (graph, cycles, stuck) = StepGraph.build(raws.map { (id: $0.id, needs: $0.needs?.filter(ids.contains)) })
        let locations = Dictionary(uniqueKeysWithValues: raws.map { ($0.id, $0.location) })
        for cycle in cycles {
            let names = (cycle + [cycle[0]]).joined(separator: " → ")
            sink.error(.graphCycle, "steps depend on each other in a cycle: \(names)", at: locations[cycle[0]] ?? .start)
        }
        for id in stuck {
            sink.error(
                .unreachableStep, "step '\(id)' can never run: it waits for a step in a dependency cycle", at: locations[id] ?? .start)
        }

        // Pass 2: each step's content, conditions and templates, now that the graph is known.
        var steps: [Step] = []
        for raw in raws {
            guard let type = raw.type else { continue }
            let ancestors = graph.ancestors(of: raw.id)
            var context = CheckContext(stepId: raw.id, ancestors: ancestors, allSteps: ids, stepType: type)
            var condition: Condition? = nil
            if let ifPair = raw.fields["if"] {
                condition = loadCondition(ifPair.value, context: &context)
            }
            guard let action = loadAction(type, raw: raw, context: &context) else { continue }
            steps.append(
                Step(
                    id: raw.id, name: raw.name, location: raw.location, needs: graph.dependencies[raw.id] ?? [], condition: condition,
                    action: action)
            )
        }
        let used = Set(raws.compactMap { $0.type?.channel })
        for (channel, location) in preferenceChannels where !used.contains(channel) {
            sink.warning(
                .unusedPreference, "a preference for \(channel.rawValue), but the workflow has no \(channel.rawValue) step",
                at: location)
        }
        guard !sink.hasErrors else { return nil }
        return Workflow(
            id: workflow.id, name: workflow.name, description: workflow.description, tags: workflow.tags, active: workflow.active,
            critical: workflow.critical, preferences: preferences, payloadSchema: schema, steps: steps, graph: graph, file: file,
            window: window, timezone: timezone, locale: locale, translations: translations
        )
    }

    func needLocation(_ need: String, in node: YNode) -> SourceLocation {
        if case .sequence(let items, _) = node {
            for item in items { if case .scalar(let scalar) = item, scalar.text == need { return scalar.location } }
        }
        return node.location
    }

    struct CheckContext {
        var stepId: String
        var ancestors: Set<String>
        var allSteps: Set<String>
        var stepType: StepType? = nil
    }

    mutating func loadAction(_ type: StepType, raw: RawStep, context: inout CheckContext) -> StepAction? {
        let f = raw.fields
        func channelOptions() -> ChannelOptions {
            var options = ChannelOptions()
            if let pair = f["overrides"] { options.overrides = overrides(pair.value) }
            if let pair = f["integrations"], let list = stringList(pair.value, field: "integrations") {
                if list.isEmpty {
                    sink.error(
                        .invalidValue, "`integrations` is empty, so the step could never send; remove it to use every active integration",
                        at: pair.value.location)
                }
                options.integrations = list.map(\.0)
            }
            if let pair = f["window"] { options.window = sendWindow(pair.value, field: "window") }
            return options
        }
        switch type {
        case .push:
            var content = PushContent()
            content.title = template(f["title"], context: &context)
            content.body = template(f["body"], context: &context)
            if content.title == nil, content.body == nil, f["title"] == nil, f["body"] == nil {
                sink.error(.missingContent, "push step '\(raw.id)' needs a `title` or a `body`", at: raw.location)
            }
            if let pair = f["data"] {
                if case .mapping(let pairs, _) = pair.value {
                    for entry in pairs {
                        if case .scalar = entry.value {
                            if let compiled = template(entry, context: &context) { content.data[entry.key] = compiled }
                        } else {
                            sink.error(
                                .wrongType,
                                "push `data` values must be text (providers deliver strings); '\(entry.key)' is \(entry.value.kindName)",
                                at: entry.value.location)
                        }
                    }
                } else {
                    sink.error(
                        .wrongType, "push `data` must be a mapping of keys to text, not \(pair.value.kindName)", at: pair.value.location)
                }
            }
            content.image = template(f["image"], context: &context)
            content.sound = template(f["sound"], context: &context)
            content.badge = template(f["badge"], context: &context)
            content.collapseKey = template(f["collapseKey"], context: &context)
            if let pair = f["ttl"] { content.ttl = duration(pair.value, field: "ttl") }
            if let pair = f["priority"], let (text, location) = string(pair.value, field: "priority") {
                if ["high", "normal"].contains(text) {
                    content.priority = text
                } else {
                    sink.error(.invalidValue, "push priority is 'high' or 'normal', not '\(text)'", at: location)
                }
            }
            return .push(content, channelOptions())
        case .chat, .sms:
            guard let body = requiredTemplate(f["body"], field: "body", step: raw, context: &context) else {
                _ = channelOptions()
                return nil
            }
            return type == .chat ? .chat(ChatContent(body: body), channelOptions()) : .sms(SMSContent(body: body), channelOptions())
        case .email:
            let subject = requiredTemplate(f["subject"], field: "subject", step: raw, context: &context)
            let body = requiredTemplate(f["body"], field: "body", step: raw, context: &context, escapesHTML: true)
            let text = template(f["text"], context: &context)
            let from = template(f["from"], context: &context)
            let senderName = template(f["senderName"], context: &context)
            let options = channelOptions()
            guard let subject, let body else { return nil }
            return .email(EmailContent(subject: subject, body: body, text: text, from: from, senderName: senderName), options)
        case .delay:
            switch (f["for"], f["until"]) {
            case (let forPair?, nil):
                return duration(forPair.value, field: "for").map { .delay(.duration($0)) }
            case (nil, let untilPair?):
                return template(untilPair, context: &context).map { .delay(.until($0)) }
            case (_?, let untilPair?):
                sink.error(.invalidValue, "a delay takes either `for` or `until`, not both", at: untilPair.keyLocation)
                return nil
            case (nil, nil):
                sink.error(
                    .missingContent, "delay step '\(raw.id)' needs `for` (e.g. 1h) or `until` (a timestamp template)", at: raw.location)
                return nil
            }
        case .digest:
            guard let windowPair = f["window"] else {
                sink.error(.missingContent, "digest step '\(raw.id)' needs a `window` (e.g. 10m)", at: raw.location)
                return nil
            }
            let window = duration(windowPair.value, field: "window")
            let key = template(f["key"], context: &context)
            return window.map { .digest(DigestSpec(window: $0, key: key)) }
        case .throttle:
            guard let limitPair = f["limit"], let windowPair = f["window"] else {
                sink.error(
                    .missingContent, "throttle step '\(raw.id)' needs a `limit` (runs) and a `window` (e.g. 1h)", at: raw.location)
                return nil
            }
            var limit: Int?
            if case .scalar(let scalar) = limitPair.value, scalar.kind == .integer, let value = Int(scalar.text),
                (1...1_000_000).contains(value)
            {
                limit = value
            } else {
                sink.error(.invalidValue, "`limit` must be a whole number from 1 to 1000000", at: limitPair.value.location)
            }
            let window = duration(windowPair.value, field: "window")
            let key = template(f["key"], context: &context)
            guard let limit, let window else { return nil }
            return .throttle(ThrottleSpec(limit: limit, window: window, key: key))
        }
    }

    mutating func requiredTemplate(
        _ pair: YPair?, field: String, step: RawStep, context: inout CheckContext, escapesHTML: Bool = false
    ) -> Template? {
        guard let pair else {
            sink.error(.missingContent, "\(step.type?.rawValue ?? "") step '\(step.id)' needs a `\(field)`", at: step.location)
            return nil
        }
        return template(pair, context: &context, escapesHTML: escapesHTML)
    }

    // MARK: Templates and conditions

    mutating func template(_ pair: YPair?, context: inout CheckContext, escapesHTML: Bool = false) -> Template? {
        guard let pair else { return nil }
        guard case .scalar(let scalar) = pair.value, scalar.kind != .null else {
            sink.error(.wrongType, "`\(pair.key)` must be text, not \(pair.value.kindName)", at: pair.value.location)
            return nil
        }
        let start = contentStart(scalar)
        switch Template.compile(scalar.text, escapesHTML: escapesHTML, at: scalar.location, contentStart: start) {
        case .failure(let error):
            sink.error(.templateSyntax, error.message, at: error.location)
            return nil
        case .success(let template):
            for (path, location) in template.variables {
                switch check(path, context: context, inTemplate: true) {
                case .valid: break
                case .finding(let rule, let message): sink.report(rule, message, at: location)
                }
            }
            return template
        }
    }

    func contentStart(_ scalar: YScalar) -> SourceLocation {
        if scalar.block { return SourceLocation(line: scalar.location.line + 1, column: scalar.location.column) }
        return SourceLocation(line: scalar.location.line, column: scalar.location.column + (scalar.quoted ? 1 : 0))
    }

    mutating func loadCondition(_ node: YNode, context: inout CheckContext) -> Condition? {
        guard case .scalar(let scalar) = node, scalar.kind != .null else {
            sink.error(.wrongType, "`if` must be a condition such as payload.amount > 100, not \(node.kindName)", at: node.location)
            return nil
        }
        let start = contentStart(scalar)
        func position(_ offset: Int) -> SourceLocation {
            SourceLocation(line: start.line, column: start.column + offset)
        }
        let expression: Expression
        do {
            expression = try ExpressionParser.parse(scalar.text)
        } catch {
            sink.error(.expressionSyntax, "condition: \(error.message)", at: position(error.offset))
            return nil
        }
        let snapshot = context
        let loader = self
        var checker = ExpressionChecker(resolvePath: { path in loader.check(path, context: snapshot, inTemplate: false) })
        checker.check(expression)
        for (rule, message, offset) in checker.findings {
            sink.report(rule, message, at: position(offset))
        }
        return Condition(source: scalar.text, expression: expression, location: start)
    }

    /// Checks one path of a condition or template against the schema, the subscriber fields and the step graph.
    func check(_ path: [String], context: CheckContext, inTemplate: Bool) -> PathCheck {
        guard let root = path.first else { return .valid(nil) }
        let dotted = path.joined(separator: ".")
        switch root {
        case "payload":
            guard path.count > 1 else { return .valid(.object) }
            guard hasSchema else {
                return .finding(.undeclaredPayload, "\(dotted) is used but the workflow declares no `payload` schema")
            }
            guard let schema else { return .valid(nil) }  // the schema itself was invalid and reported
            let (declared, type) = schema.lookup(path.dropFirst())
            return declared ? .valid(type) : .finding(.undeclaredPayload, "\(dotted) is not declared in the payload schema")
        case "subscriber":
            guard path.count > 1 else { return .valid(.object) }
            guard WorkflowParser.subscriberFields.contains(path[1]) else {
                let hint = suggestion(for: path[1], among: WorkflowParser.subscriberFields).map { "; did you mean '\($0)'?" } ?? ""
                return .finding(.unknownSubscriberField, "subscriber has no field '\(path[1])'\(hint)")
            }
            return .valid(path[1] == "data" ? nil : (path.count == 2 ? .string : nil))
        case "steps":
            guard path.count > 1 else { return .finding(.stepReference, "`steps` needs a step id: steps.<id>.status") }
            let step = path[1]
            guard context.allSteps.contains(step) else {
                let hint = suggestion(for: step, among: Array(context.allSteps)).map { "; did you mean '\($0)'?" } ?? ""
                return .finding(.stepReference, "steps.\(step): there is no step '\(step)'\(hint)")
            }
            guard context.ancestors.contains(step) else {
                return .finding(
                    .stepReference,
                    "steps.\(step): step '\(step)' does not run before '\(context.stepId)'; add it to `needs` or move it earlier"
                )
            }
            guard path.count > 2 else { return .valid(.object) }
            guard let type = WorkflowParser.stepResultFields[path[2]] else {
                return .finding(
                    .unknownStepField, "steps.\(step).\(path[2]): step results are status, reason, delivered, failed, count and events")
            }
            return .valid(path.count == 3 ? type : nil)
        case "tenant":
            return .valid(nil)
        case "t" where inTemplate:
            // Translations (docs/workflows.md §Translations): the default locale must define every key used.
            guard path.count > 1 else { return .valid(.object) }
            let key = path.dropFirst().joined(separator: ".")
            guard let defaults = translations[locale] else {
                return .finding(
                    .missingTranslation, "\(dotted) is used but the workflow has no translations for its default locale '\(locale)'")
            }
            guard defaults[key] != nil || defaults.keys.contains(where: { $0.hasPrefix(key + ".") }) else {
                return .finding(.missingTranslation, "\(dotted) is not translated in the default locale '\(locale)'")
            }
            let missing = translations.filter { tag, entries in
                tag != locale && entries[key] == nil && !entries.keys.contains(where: { $0.hasPrefix(key + ".") })
            }.keys.sorted()
            if !missing.isEmpty {
                return .finding(
                    .untranslatedKey,
                    "\(dotted) has no translation in \(missing.joined(separator: ", ")): those subscribers get the '\(locale)' text")
            }
            return .valid(.string)
        case "unsubscribeUrl" where inTemplate && path.count == 1:
            // The one-click unsubscribe link (README §Preferences): set in email steps of workflows subscribers may
            // change, and only when Herald knows its public URL; empty otherwise.
            if context.stepType != .email {
                return .finding(.unknownVariable, "unsubscribeUrl is only set in email steps")
            }
            return .valid(.string)
        case "workflow":
            return .valid(path.count == 2 && ["id", "name"].contains(path[1]) ? .string : nil)
        default:
            if inTemplate {
                return .finding(
                    .unknownVariable,
                    "unknown variable '\(dotted)'; template variables start with payload, subscriber, steps, tenant or workflow")
            }
            return .finding(.unknownRoot, "unknown path '\(dotted)'; paths start with payload, subscriber, steps, tenant or workflow")
        }
    }

    // MARK: Translations

    /// `translations: { <locale>: { key: text, group: { key: text } } }`: nested keys are joined with dots. A
    /// workflow's own texts override the shared files' (`translations/<locale>.yaml`) key by key.
    mutating func loadTranslations(_ node: YNode) {
        guard case .mapping(let locales, _) = node else {
            sink.error(.wrongType, "`translations` maps locales (en, fr, pt-BR) to their texts, not \(node.kindName)", at: node.location)
            return
        }
        for pair in locales {
            let tag = Workflow.normalisedLocale(pair.key)
            guard !tag.isEmpty, tag.count <= 35, tag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                sink.error(.invalidValue, "'\(pair.key)' is not a locale tag (en, fr, pt-BR)", at: pair.keyLocation)
                continue
            }
            var entries = translations[tag] ?? [:]
            flattenTranslations(pair.value, prefix: "", field: "translations.\(pair.key)", into: &entries)
            translations[tag] = entries
        }
        if !translations.isEmpty, translations[locale] == nil {
            sink.error(
                .missingTranslation, "`translations` has no entry for the default locale '\(locale)' (set `locale:` or add it)",
                at: node.location)
        }
    }

    mutating func flattenTranslations(_ node: YNode, prefix: String, field: String, into entries: inout [String: String]) {
        guard case .mapping(let pairs, _) = node else {
            sink.error(.wrongType, "`\(field)` maps keys to texts, not \(node.kindName)", at: node.location)
            return
        }
        for pair in pairs {
            let key = prefix.isEmpty ? pair.key : "\(prefix).\(pair.key)"
            switch pair.value {
            case .mapping: flattenTranslations(pair.value, prefix: key, field: "\(field).\(pair.key)", into: &entries)
            case .scalar(let scalar) where scalar.kind != .null: entries[key] = scalar.text
            default:
                sink.error(
                    .wrongType, "`\(field).\(pair.key)` must be a text or a mapping of texts, not \(pair.value.kindName)",
                    at: pair.value.location)
            }
        }
    }

    // MARK: Preferences

    /// `preferences: { all: { enabled, readOnly }, channels: { <channel>: { enabled } } }`.
    mutating func loadPreferences(_ node: YNode) {
        guard case .mapping(let pairs, _) = node else {
            sink.error(.wrongType, "`preferences` is a mapping with `all` and `channels`, not \(node.kindName)", at: node.location)
            return
        }
        let fields = keyed(pairs, allowed: ["all", "channels"], in: "preferences")
        if let all = fields["all"] {
            if case .mapping(let allPairs, _) = all.value {
                let allFields = keyed(allPairs, allowed: ["enabled", "readOnly"], in: "preferences.all")
                preferences.enabled = allFields["enabled"].flatMap { bool($0.value, field: "preferences.all.enabled") }
                preferences.readOnly = allFields["readOnly"].flatMap { bool($0.value, field: "preferences.all.readOnly") } ?? false
            } else {
                sink.error(
                    .wrongType, "`preferences.all` is a mapping with `enabled` and `readOnly`, not \(all.value.kindName)",
                    at: all.value.location)
            }
        }
        guard let channels = fields["channels"] else { return }
        guard case .mapping(let channelPairs, _) = channels.value else {
            sink.error(
                .wrongType, "`preferences.channels` maps channels to `{ enabled: … }`, not \(channels.value.kindName)",
                at: channels.value.location)
            return
        }
        let names = Channel.allCases.map(\.rawValue)
        for pair in channelPairs {
            guard let channel = Channel(rawValue: pair.key) else {
                let hint = suggestion(for: pair.key, among: names).map { "; did you mean '\($0)'?" } ?? ""
                sink.error(
                    .unknownKey, "unknown channel '\(pair.key)' in preferences.channels (\(names.joined(separator: ", ")))\(hint)",
                    at: pair.keyLocation)
                continue
            }
            guard case .mapping(let settingPairs, _) = pair.value else {
                sink.error(
                    .wrongType, "`preferences.channels.\(pair.key)` is a mapping `{ enabled: true|false }`, not \(pair.value.kindName)",
                    at: pair.value.location)
                continue
            }
            let setting = keyed(settingPairs, allowed: ["enabled"], in: "preferences.channels.\(pair.key)")
            preferenceChannels.append((channel, pair.keyLocation))
            if let enabled = setting["enabled"].flatMap({ bool($0.value, field: "preferences.channels.\(pair.key).enabled") }) {
                preferences.channels[channel] = enabled
            }
        }
    }

    // MARK: Overrides and durations

    mutating func overrides(_ node: YNode) -> [String: JSONValue] {
        guard case .mapping(let pairs, _) = node else {
            sink.error(.wrongType, "`overrides` maps provider ids to request fragments, not \(node.kindName)", at: node.location)
            return [:]
        }
        var result: [String: JSONValue] = [:]
        for pair in pairs {
            if !ProviderCatalog.all.contains(pair.key) {
                let hint = suggestion(for: pair.key, among: ProviderCatalog.all).map { "; did you mean '\($0)'?" } ?? ""
                sink.warning(.unknownProvider, "'\(pair.key)' is not a provider id Herald knows\(hint)", at: pair.keyLocation)
            }
            guard case .mapping = pair.value else {
                sink.error(
                    .wrongType, "the override for '\(pair.key)' must be a mapping, not \(pair.value.kindName)", at: pair.value.location)
                continue
            }
            result[pair.key] = pair.value.json
        }
        return result
    }

    mutating func duration(_ node: YNode, field: String) -> WorkflowDuration? {
        guard case .scalar(let scalar) = node, scalar.kind != .null else {
            sink.error(.wrongType, "`\(field)` must be a duration such as 30s, 10m, 2h or 1d, not \(node.kindName)", at: node.location)
            return nil
        }
        switch WorkflowDuration.parse(scalar.text) {
        case .success(let duration): return duration
        case .failure(let error):
            sink.error(.invalidDuration, "`\(field)`: \(error.message)", at: scalar.location)
            return nil
        }
    }

    /// A send window: `{ after: "08:00", before: "21:00", days: [mon, …] }` (docs/workflows.md §Send windows).
    mutating func sendWindow(_ node: YNode, field: String) -> LocalTimeWindow? {
        guard case .mapping(let pairs, let location) = node else {
            sink.error(
                .wrongType, "`\(field)` must be a mapping with `after`, `before` and optional `days`, not \(node.kindName)",
                at: node.location)
            return nil
        }
        let fields = keyed(pairs, allowed: ["after", "before", "days"], in: field)
        func time(_ name: String) -> Int? {
            guard let pair = fields[name] else {
                sink.error(.missingField, "`\(field)` needs `\(name)`, a local time HH:MM", at: location)
                return nil
            }
            guard let (text, textLocation) = string(pair.value, field: "\(field).\(name)") else { return nil }
            guard let seconds = LocalTimeWindow.secondsOfDay(text) else {
                sink.error(.invalidValue, "`\(field).\(name)` '\(text)' is not a local time HH:MM or HH:MM:SS", at: textLocation)
                return nil
            }
            return seconds
        }
        let after = time("after")
        let before = time("before")
        var days: Set<Int>?
        if let pair = fields["days"], let list = stringList(pair.value, field: "\(field).days") {
            var set: Set<Int> = []
            for (name, dayLocation) in list {
                guard let day = LocalTimeWindow.weekdays[name.lowercased()] else {
                    sink.error(.invalidValue, "unknown day '\(name)' (mon, tue, wed, thu, fri, sat, sun)", at: dayLocation)
                    continue
                }
                set.insert(day)
            }
            if list.isEmpty {
                sink.error(.invalidValue, "`\(field).days` is empty, so the window would never open", at: pair.value.location)
            }
            days = set
        }
        guard let after, let before else { return nil }
        guard after != before else {
            sink.error(.invalidValue, "`\(field)` opens and closes at the same time, so it would never open", at: location)
            return nil
        }
        return LocalTimeWindow(after: after, before: before, days: days)
    }

    // MARK: Primitive readers

    mutating func keyed(_ pairs: [YPair], allowed: [String], in context: String) -> [String: YPair] {
        var result: [String: YPair] = [:]
        for pair in pairs {
            guard allowed.contains(pair.key) else {
                let hint = suggestion(for: pair.key, among: allowed).map { "; did you mean '\($0)'?" } ?? ""
                sink.error(.unknownKey, "unknown key '\(pair.key)' in \(context)\(hint)", at: pair.keyLocation)
                continue
            }
            result[pair.key] = pair
        }
        return result
    }

    mutating func string(_ node: YNode, field: String) -> (String, SourceLocation)? {
        guard case .scalar(let scalar) = node, scalar.kind != .null else {
            sink.error(.wrongType, "`\(field)` must be a string, not \(node.kindName)", at: node.location)
            return nil
        }
        return (scalar.text, scalar.location)
    }

    mutating func bool(_ node: YNode, field: String) -> Bool? {
        guard case .scalar(let scalar) = node, scalar.kind == .bool else {
            sink.error(.wrongType, "`\(field)` must be true or false, not \(node.kindName)", at: node.location)
            return nil
        }
        return scalar.json.boolValue
    }

    mutating func stringList(_ node: YNode, field: String) -> [(String, SourceLocation)]? {
        guard case .sequence(let items, _) = node else {
            sink.error(.wrongType, "`\(field)` must be a list, not \(node.kindName)", at: node.location)
            return nil
        }
        var result: [(String, SourceLocation)] = []
        for item in items {
            guard case .scalar(let scalar) = item, scalar.kind != .null else {
                sink.error(.wrongType, "every entry of `\(field)` must be a string, not \(item.kindName)", at: item.location)
                continue
            }
            result.append((scalar.text, scalar.location))
        }
        return result
    }

    func isIdentifier(_ text: String, allowDots: Bool) -> Bool {
        guard let first = text.unicodeScalars.first, (1...(allowDots ? 128 : 64)).contains(text.count) else { return false }
        let isLetter = ("a"..."z").contains(first) || ("A"..."Z").contains(first)
        guard isLetter || (allowDots && ("0"..."9").contains(first)) else { return false }
        return text.unicodeScalars.allSatisfy { c in
            ("a"..."z").contains(c) || ("A"..."Z").contains(c) || ("0"..."9").contains(c) || c == "-" || c == "_" || (allowDots && c == ".")
        }
    }
}
