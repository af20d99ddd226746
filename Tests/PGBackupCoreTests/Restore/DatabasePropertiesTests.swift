@testable import PGBackupCore
import Testing

struct DatabasePropertiesTests {
    /// `setconfig` holds list variables with identifiers quoted as needed; each element is
    /// restored as its own literal, as pg_dump does.
    @Test(arguments: [
        ("app, public", ["app", "public"]),
        ("\"$user\", public", ["$user", "public"]),
        ("\"My Schema\", \"a\"\"b\", x", ["My Schema", "a\"b", "x"]),
        ("\"\"", [""]),
        ("", []),
    ])
    func listValuesSplitLikePgDump(text: String, elements: [String]) {
        #expect(DatabaseProperties.splitIdentifierList(text) == elements)
    }

    @Test func onlyPostgreSQLsListQuoteVariablesAreSplit() {
        #expect(DatabaseProperties.listVariables.contains("search_path"))
        #expect(!DatabaseProperties.listVariables.contains("datestyle"), "DateStyle takes one string, not a list of names")
    }
}
