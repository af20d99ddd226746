import Compression
import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Which compressor each kind of backup uses (docs/decisions.md, "Base backups compress with
/// zlib"), from the configuration down to the bytes an artifact is stored as.
@Suite struct CompressionEngineTests {
    func compression(_ toml: String) throws -> CompressionConfiguration {
        try Configuration.parse(toml, file: "/etc/pgbackd/test.toml", environment: [:]).compression
    }

    @Test("defaults: logical dumps libdeflate at every level, base backups zlib from level 4")
    func defaultsPerKindAndLevel() throws {
        for level in 0...9 {
            let configuration = try compression("[compression]\nlevel = \(level)\n")
            #expect(configuration.engine == nil, "no engine configured")
            #expect(configuration.engine(for: .logical) == .libdeflate, "logical, level \(level)")
            #expect(configuration.engine(for: .base) == (level >= 4 ? .zlib : .libdeflate), "base, level \(level)")
        }
        // The shipped default level (1) keeps libdeflate for both: it is smaller and faster there.
        let defaults = try compression("")
        #expect(defaults.engine(for: .base) == .libdeflate)
        #expect(defaults.engine(for: .logical) == .libdeflate)
    }

    @Test("engine = … applies to every kind of backup", arguments: GzipEngine.allCases)
    func configuredEngineOverrides(engine: GzipEngine) throws {
        for level in [1, 6] {
            let configuration = try compression("[compression]\nlevel = \(level)\nengine = \"\(engine.rawValue)\"\n")
            #expect(configuration.engine == engine)
            #expect(configuration.engine(for: .logical) == engine)
            #expect(configuration.engine(for: .base) == engine)
        }
    }

    @Test("an unknown engine is an invalid value naming the choices")
    func unknownEngine() throws {
        do {
            _ = try compression("[compression]\nengine = \"pigz\"\n")
            Issue.record("engine = \"pigz\" was accepted")
        } catch let error as ConfigurationError {
            #expect(error.code == .invalidValue)
            #expect(error.key == "compression.engine")
            #expect(error.description.contains(#"expected one of "zlib", "libdeflate", got "pigz""#), "\(error)")
        }
    }

    @Test("an engine that is not a string is a wrong type; a misspelt key suggests engine")
    func wrongTypeAndMisspelling() throws {
        do {
            _ = try compression("[compression]\nengine = 6\n")
            Issue.record("engine = 6 was accepted")
        } catch let error as ConfigurationError {
            #expect(error.code == .wrongType)
            #expect(error.key == "compression.engine")
        }
        do {
            _ = try compression("[compression]\nengines = \"zlib\"\n")
            Issue.record("engines = was accepted")
        } catch let error as ConfigurationError {
            #expect(error.code == .unknownKey)
            #expect(error.description.contains("did you mean 'engine'"), "\(error)")
        }
    }

    /// What is stored, not what is configured: a zlib stream is one gzip member however many
    /// blocks it has, libdeflate writes one member per 1 MiB block. Fails if the base backup's
    /// default went back to libdeflate, or if ArtifactWriter stopped passing the engine on.
    @Test("at level 6 a base tar is stored as one zlib member, a dump as libdeflate members",
          arguments: [(BackupKind.base, 1), (BackupKind.logical, 4)])
    func storedArtifactUsesTheKindsEngine(kind: BackupKind, members: Int) async throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        let compression = try compression("[compression]\nlevel = 6\nthreads = 2\n")
        var writer = try await ArtifactWriter(
            repository: repository, relativeKey: "backups/x/artifact.gz", content: kind == .base ? .baseTar : .databaseDump,
            database: nil, compression: compression, kind: kind)
        #expect(writer.engine == compression.engine(for: kind))
        // 3.5 MiB of relation-file-like bytes: 8 KiB pages of repeated tuples and zero padding.
        var raw: [UInt8] = []
        for page in 0..<448 {
            let tuple = Array("\(page) entry \(page * 7919 % 1000) {\"blocks\":[{\"type\":\"paragraph\"}]} ".utf8)
            var bytes = [UInt8](repeating: 0, count: 8192)
            for offset in stride(from: 24, to: 6000, by: tuple.count) {
                let end = min(offset + tuple.count, 6000)
                bytes.replaceSubrange(offset..<end, with: tuple[0..<(end - offset)])
            }
            raw += bytes
        }
        for chunk in stride(from: 0, to: raw.count, by: 300_000) {
            try await writer.write(Array(raw[chunk..<min(raw.count, chunk + 300_000)]))
        }
        let artifact = try await writer.commit()

        var stored: [UInt8] = []
        for try await chunk in try await repository.storage.get(key: repository.key(relative: artifact.key), range: nil) {
            stored += chunk
        }
        #expect(Int64(stored.count) == artifact.storedSize)
        var decoder = GzipDecoder()
        let decoded = try decoder.decompress(stored)
        try decoder.finish()
        #expect(decoded == raw)
        #expect(decoder.memberCount == members, "\(kind) backup at level 6: \(decoder.memberCount) gzip member(s)")
    }
}
