import HeraldCore
import Testing

@Test("placeholder core")
func placeholderCore() { #expect(ObjectIDGenerator.isValid(ObjectIDGenerator().next())) }
