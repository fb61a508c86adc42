import Foundation
import HeraldCore
import HeraldWorkflow
import Testing

/// Workflow translations (docs/workflows.md §Translations): the `t` object for a subscriber's locale, key by key
/// with fallback, rendered by the step templates.
@Suite("Translations")
struct TranslationTests {
    static let workflow = """
        workflow: shipped
        locale: en
        translations:
          en:
            greeting: "Hello"
            order: { shipped: "Your order has shipped" }
          fr:
            greeting: "Bonjour"
            order: { shipped: "Votre commande est partie" }
          fr-CA:
            greeting: "Allô"
        steps:
          - id: push
            type: push
            title: "{{t.greeting}} {{subscriber.firstName}}"
            body: "{{t.order.shipped}}"
        """

    @Test(
        "the subscriber's locale picks the translations: exact tag, else language, else the default; key by key",
        arguments: [
            ("fr-CA", "Allô Ann", "Votre commande est partie"),
            ("fr_ca", "Allô Ann", "Votre commande est partie"),
            ("fr", "Bonjour Ann", "Votre commande est partie"),
            ("fr-BE", "Bonjour Ann", "Votre commande est partie"),
            ("de", "Hello Ann", "Your order has shipped"),
            ("", "Hello Ann", "Your order has shipped"),
        ])
    func renders(locale: String, title: String, body: String) throws {
        let (parsed, diagnostics) = WorkflowParser.parse(Self.workflow, file: "shipped.yaml")
        #expect(diagnostics.filter { $0.severity == .error } == [], "\(diagnostics)")
        let workflow = try #require(parsed)
        let context: JSONValue = [
            "subscriber": ["firstName": "Ann", "locale": .string(locale)], "t": workflow.translationContext(locale: locale),
        ]
        guard case .push(let content, _)? = workflow.step("push")?.action else { Issue.record("not a push step"); return }
        #expect(content.title?.render(context) == title)
        #expect(content.body?.render(context) == body)
    }

    @Test("a key missing in the default locale is an error, in another locale a warning; the default locale must exist")
    func findings() {
        let missingDefault = """
            workflow: a
            locale: de
            translations:
              en: { greeting: "Hello" }
            steps:
              - id: push
                type: push
                body: "{{t.greeting}}"
            """
        let rules = WorkflowParser.parse(missingDefault, file: "a.yaml").diagnostics.map(\.rule.id)
        #expect(rules.contains("missing-translation"), "\(rules)")
        let untranslated = """
            workflow: b
            translations:
              en: { greeting: "Hello", farewell: "Bye" }
              fr: { greeting: "Bonjour" }
            steps:
              - id: push
                type: push
                body: "{{t.greeting}} {{t.farewell}}"
            """
        let (workflow, diagnostics) = WorkflowParser.parse(untranslated, file: "b.yaml")
        #expect(workflow != nil, "a warning does not stop the workflow from loading")
        #expect(diagnostics.map(\.rule.id) == ["untranslated-key"], "\(diagnostics)")
        #expect(diagnostics.first?.message.contains("fr") == true)
    }

    @Test(
        "shared translation files beside the workflows serve every workflow; a workflow's own texts override them; a change re-checks the workflows"
    )
    func sharedFiles() throws {
        let workflow = """
            workflow: shared
            translations:
              fr: { farewell: "Au revoir" }
            steps:
              - id: push
                type: push
                title: "{{t.greeting}}"
                body: "{{t.farewell}}"
            """
        var catalog = WorkflowCatalog()
        let findings = catalog.update([
            ("flows/shared.yaml", workflow),
            ("flows/translations/en.yaml", "greeting: Hello\nfarewell: Goodbye\n"),
            ("flows/translations/fr.yaml", "greeting: Bonjour\n"),
        ])
        #expect(findings.isEmpty, "\(findings)")
        let loaded = try #require(catalog.workflow("shared"))
        #expect(loaded.translationContext(locale: "fr") == ["greeting": "Bonjour", "farewell": "Au revoir"])
        #expect(loaded.translationContext(locale: "en") == ["greeting": "Hello", "farewell": "Goodbye"])
        #expect(catalog.paths == ["flows/shared.yaml"], "translation files are not workflows")
        // The default locale's file loses a key: the workflow is checked again and reported (its last good version stays).
        let after = catalog.update([
            ("flows/shared.yaml", workflow),
            ("flows/translations/en.yaml", "greeting: Hello\n"),
            ("flows/translations/fr.yaml", "greeting: Bonjour\n"),
        ])
        #expect(after.map(\.rule.id) == ["missing-translation"], "\(after)")
        #expect(catalog.workflow("shared") != nil)
        // A file that is not named after a locale, or holds no mapping, is reported at its own path.
        let bad = catalog.update([
            ("flows/shared.yaml", workflow), ("flows/translations/en.yaml", "- a list\n"),
            ("flows/translations/fr.yaml", "greeting: Bonjour\n"),
        ])
        #expect(bad.contains { $0.file == "flows/translations/en.yaml" && $0.rule.id == "wrong-type" }, "\(bad)")
    }

    @Test("validating one workflow file reads the translations beside it")
    func findsFilesBeside() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("herald-translations-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("translations"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try "workflow: a\nsteps:\n  - id: p\n    type: push\n    body: \"{{t.greeting}}\"\n".write(
            to: directory.appendingPathComponent("a.yaml"), atomically: true, encoding: .utf8)
        try "greeting: Hello\n".write(to: directory.appendingPathComponent("translations/en.yaml"), atomically: true, encoding: .utf8)
        let files = try WorkflowFiles.find(at: directory.appendingPathComponent("a.yaml").path)
        #expect(files.map { ($0 as NSString).lastPathComponent } == ["a.yaml", "en.yaml"])
        var catalog = WorkflowCatalog()
        #expect(catalog.update(try WorkflowFiles.read([directory.appendingPathComponent("a.yaml").path])).isEmpty)
    }
}
