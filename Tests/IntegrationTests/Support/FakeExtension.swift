import Foundation

/// An extension that exists only while a test wants it: its control and script files are put
/// into the test server's extension directory and removed again, so a backup can use an
/// extension the drill server then lacks, as a host without PostGIS would.
struct FakeExtension {
    let name: String
    let directory: String

    static func install(_ postgres: TestServices.Postgres) async throws -> FakeExtension {
        let sharedir = try await shell("\(postgres.binDirectory)/pg_config", ["--sharedir"]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        let fake = FakeExtension(name: "pgbackd_probe_\(UUID().uuidString.prefix(8).lowercased())", directory: "\(sharedir)/extension")
        try "comment = 'pgbackd test extension'\ndefault_version = '1.0'\nrelocatable = true\n"
            .write(toFile: "\(fake.directory)/\(fake.name).control", atomically: true, encoding: .utf8)
        try "create function \(fake.name)() returns int language sql as 'select 1';\n"
            .write(toFile: "\(fake.directory)/\(fake.name)--1.0.sql", atomically: true, encoding: .utf8)
        for file in ["\(fake.name).control", "\(fake.name)--1.0.sql"] { chmod("\(fake.directory)/\(file)", 0o644) }
        return fake
    }

    /// The server no longer offers it; databases that created it keep it.
    func uninstall() {
        for file in ["\(name).control", "\(name)--1.0.sql"] { try? FileManager.default.removeItem(atPath: "\(directory)/\(file)") }
    }
}
