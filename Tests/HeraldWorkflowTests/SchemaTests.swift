import HeraldCore
import HeraldWorkflow
import Testing

@Suite("Payload schemas")
struct SchemaTests {
    static let workflow = """
        workflow: orders
        payload:
          type: object
          required: [orderId, items]
          properties:
            orderId: { type: string, minLength: 3, maxLength: 10, pattern: "^[A-Z]+-[0-9]+$" }
            email: { type: string, format: email }
            eta: { type: string, format: date-time }
            url: { type: string, format: uri }
            amount: { type: number, minimum: 0, maximum: 1000 }
            count: { type: integer }
            priority: { enum: [low, high], default: low }
            gift: { type: boolean }
            note: { type: [string, "null"] }
            items:
              type: array
              items:
                type: object
                required: [sku]
                properties:
                  sku: { type: string }
                  quantity: { type: integer, minimum: 1 }
            meta:
              type: object
              additionalProperties: false
              properties:
                source: { type: string }
        steps:
          - id: a
            type: sms
            body: "{{payload.orderId}}"
        """

    static func schema() throws -> PayloadSchema {
        let (workflow, diagnostics) = WorkflowParser.parse(workflow, file: "orders.yaml")
        #expect(diagnostics.isEmpty, "\(diagnostics)")
        return try #require(workflow?.payloadSchema)
    }

    @Test(
        "violations carry the field path, message and schema path",
        arguments: [
            (#"{"orderId":"AB-1","items":[]}"#, []),
            (#"{"items":[]}"#, ["orderId|is required|#/required"]),
            (#"{"orderId":5,"items":[]}"#, ["orderId|must be of type string|#/properties/orderId/type"]),
            (
                #"{"orderId":"A","items":[]}"#,
                [
                    "orderId|must be at least 3 characters long|#/properties/orderId/minLength",
                    "orderId|must match the pattern ^[A-Z]+-[0-9]+$|#/properties/orderId/pattern",
                ]
            ),
            (#"{"orderId":"AB-1","items":[],"email":"nope"}"#, ["email|must be a valid email|#/properties/email/format"]),
            (#"{"orderId":"AB-1","items":[],"eta":"tomorrow"}"#, ["eta|must be a valid date-time|#/properties/eta/format"]),
            (#"{"orderId":"AB-1","items":[],"eta":"2026-11-23T10:00:00Z"}"#, []),
            (#"{"orderId":"AB-1","items":[],"url":"not a url"}"#, ["url|must be a valid uri|#/properties/url/format"]),
            (#"{"orderId":"AB-1","items":[],"amount":1001}"#, ["amount|must be at most 1000|#/properties/amount/maximum"]),
            (#"{"orderId":"AB-1","items":[],"count":1.5}"#, ["count|must be of type integer|#/properties/count/type"]),
            (#"{"orderId":"AB-1","items":[],"priority":"urgent"}"#, [#"priority|must be one of "low", "high"|#/properties/priority/enum"#]),
            (#"{"orderId":"AB-1","items":[],"note":null}"#, []),
            (
                #"{"orderId":"AB-1","items":[{"quantity":0}]}"#,
                [
                    "items[0].sku|is required|#/properties/items/items/required",
                    "items[0].quantity|must be at least 1|#/properties/items/items/properties/quantity/minimum",
                ]
            ),
            (
                #"{"orderId":"AB-1","items":[],"meta":{"source":"web","extra":1}}"#,
                ["meta.extra|is not an allowed property|#/properties/meta/additionalProperties"]
            ),
            (#"[1]"#, ["|must be of type object|#/type"]),
        ]
    )
    func violations(payload: String, expected: [String]) throws {
        let violations = try Self.schema().validate(try JSONValue.parse(payload))
        #expect(violations.map { "\($0.field)|\($0.message)|\($0.schemaPath)" } == expected)
    }

    @Test("defaults fill missing fields")
    func defaults() throws {
        let filled = try Self.schema().applyingDefaults(to: try JSONValue.parse(#"{"orderId":"AB-1"}"#))
        #expect(filled.value(at: ["priority"]) == "low")
    }
}

@Suite("Templates and graphs")
struct TemplateTests {
    static func workflow(_ name: String) throws -> Workflow {
        let sources = try exampleSources()
        let source = try #require(sources.first { $0.path.hasSuffix("\(name).yaml") })
        return try #require(WorkflowParser.parse(source.contents, file: source.path).workflow)
    }

    @Test("text templates render verbatim; email bodies escape HTML; payload text is never evaluated")
    func rendering() throws {
        let order = try Self.workflow("order-shipped")
        guard case .push(let push, _) = order.step("push")?.action else {
            Issue.record("not a push step")
            return
        }
        let context: JSONValue = [
            "payload": ["orderId": "A&B <1> {{subscriber.email}}", "eta": "soon"], "subscriber": ["email": "secret@x"],
        ]
        #expect(push.title?.render(context) == "Order A&B <1> {{subscriber.email}} has shipped")
        #expect(push.data["orderId"]?.render(context) == "A&B <1> {{subscriber.email}}")
        let reset = try Self.workflow("password-reset")
        guard case .email(let email, _) = reset.step("email")?.action else {
            Issue.record("not an email step")
            return
        }
        let html = email.body.render([
            "payload": ["resetUrl": "https://x/?a=1&b=<2>", "expiresInMinutes": 30], "subscriber": ["firstName": "<b>Ann</b>"],
        ])
        #expect(html.contains("&lt;b&gt;Ann&lt;/b&gt;"))
        #expect(html.contains("expires in 30 minutes"))
        #expect(email.subject.render([:]) == "Reset your password")
    }

    @Test("the step graph: sequences by default, needs for branches, parallel layers")
    func graph() throws {
        let reset = try Self.workflow("password-reset")
        #expect(reset.graph.layers == [["email", "sms"]])
        let reminder = try Self.workflow("appointment-reminder")
        #expect(reminder.graph.order == ["confirm", "wait", "remind", "settle", "feedback"])
        #expect(reminder.graph.ancestors(of: "feedback") == ["confirm", "wait", "remind", "settle"])
        let incident = try Self.workflow("incident-alert")
        #expect(incident.graph.roots == ["page", "log"])
        let mermaid = reminder.graphDescription(.mermaid)
        #expect(mermaid.hasPrefix("flowchart TD"))
        #expect(mermaid.contains("feedback · email<br/>if subscriber.locale == null"))
        let dot = reset.graphDescription(.dot)
        #expect(dot.contains("trigger -> s0;") && dot.contains("trigger -> s1;"))
    }

    @Test("the catalog keeps the last good version of a file that breaks and reports duplicates")
    func catalog() throws {
        var catalog = WorkflowCatalog()
        let good = "workflow: welcome\nsteps:\n  - id: a\n    type: sms\n    body: v1\n"
        #expect(catalog.update([("welcome.yaml", good)]).isEmpty)
        #expect(catalog.workflow("welcome") != nil)
        let broken = "workflow: welcome\nsteps:\n  - id: a\n    type: sms\n"
        let findings = catalog.update([("welcome.yaml", broken)])
        #expect(findings.map(\.rule) == [.missingContent])
        guard case .sms(let sms, _)? = catalog.workflow("welcome")?.step("a")?.action else {
            Issue.record("last good version gone")
            return
        }
        #expect(sms.body.source == "v1")
        let fixed = good.replacingOccurrences(of: "v1", with: "v2")
        catalog.update([("welcome.yaml", fixed), ("copy/welcome.yaml", fixed)])
        #expect(catalog.diagnostics.map(\.rule) == [.duplicateWorkflow])
        #expect(catalog.workflow("welcome")?.file == "copy/welcome.yaml")
        catalog.update([])
        #expect(catalog.workflows.isEmpty)
    }
}
