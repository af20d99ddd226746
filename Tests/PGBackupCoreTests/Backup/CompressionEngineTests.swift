import Compression
import Foundation
import ObjectStorage
@testable import PGBackupCore
import Testing

/// Which compressor backups use (docs/decisions.md, "One compressor by default"), from the
/// configuration down to the bytes an artifact is stored as.
@Suite struct CompressionEngineTests {
    func compression(_ toml: String) throws -> CompressionConfiguration {
        try Configuration.parse(toml, file: "/etc/pgbackd/test.toml", environment: [:]).compression
    }

    @Test("default: libdeflate for every kind of backup at every level")
    func defaultIsLibdeflateEverywhere() throws {
        for level in 0...9 {
            let configuration = try compression("[compression]\nlevel = \(level)\n")
            #expect(configuration.engine == nil, "no engine configured")
            #expect(configuration.effectiveEngine == .libdeflate, "level \(level)")
        }
        #expect(try compression("").effectiveEngine == .libdeflate)
    }

    @Test("engine = … is what every artifact is written with", arguments: GzipEngine.allCases)
    func configuredEngineOverrides(engine: GzipEngine) throws {
        for level in [1, 6] {
            let configuration = try compression("[compression]\nlevel = \(level)\nengine = \"\(engine.rawValue)\"\n")
            #expect(configuration.engine == engine)
            #expect(configuration.effectiveEngine == engine)
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
    /// blocks it has; libdeflate writes one member per 4 MiB block, so 9 MiB make three (nine
    /// with the 1 MiB blocks it had before). Fails if ArtifactWriter stopped passing the engine
    /// on, or if libdeflate's blocks shrank back.
    @Test("9 MiB stored as 3 libdeflate members by default, 1 zlib member with engine = zlib",
          arguments: [(BackupKind.base, nil, 3), (BackupKind.logical, nil, 3),
                      (BackupKind.base, GzipEngine.zlib, 1), (BackupKind.logical, GzipEngine.libdeflate, 3)])
    func storedArtifactUsesTheEngine(kind: BackupKind, engine: GzipEngine?, members: Int) async throws {
        let repository = Repository(storage: MemoryStorage(), stanza: "main")
        let engineLine = engine.map { "engine = \"\($0.rawValue)\"\n" } ?? ""
        let compression = try compression("[compression]\nlevel = 6\nthreads = 2\n" + engineLine)
        var writer = try await ArtifactWriter(
            repository: repository, relativeKey: "backups/x/artifact.gz", content: kind == .base ? .baseTar : .databaseDump,
            database: nil, compression: compression)
        #expect(writer.engine == (engine ?? .libdeflate))
        // 9 MiB of relation-file-like bytes: 8 KiB pages of repeated tuples and zero padding.
        var raw: [UInt8] = []
        for page in 0..<1152 {
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
        let decoded = try decoder.decompress(stored) + decoder.finish()
        #expect(decoded == raw)
        #expect(decoder.memberCount == members, "\(kind) backup, engine \(engine?.rawValue ?? "default"): \(decoder.memberCount) gzip member(s)")
    }
}
