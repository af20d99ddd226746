import Foundation
import Testing
@testable import Encryption

/// Keys: written 0600, refused when others may read them, wrapped data keys bound to their scope
/// and unwrapped by whichever configured key wrapped them.
struct RepositoryKeyTests {
    func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("pgbackd-keys-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func aWrittenKeyIsPrivateAndReadsBackTheSame() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let key = try RepositoryKey.generate()
        try key.write(to: "\(dir)/repo.key")
        let mode = try FileManager.default.attributesOfItem(atPath: "\(dir)/repo.key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        let loaded = try RepositoryKey.load(path: "\(dir)/repo.key")
        #expect(loaded.fingerprint == key.fingerprint)
        #expect(loaded.fingerprint.count == 16)
        // Never overwritten.
        #expect(throws: (any Error).self) { try RepositoryKey.generate().write(to: "\(dir)/repo.key") }
        let text = try String(contentsOfFile: "\(dir)/repo.key", encoding: .utf8)
        #expect(!text.contains(loaded.fingerprint))
    }

    @Test func badKeyFilesAreRefusedWithTheirFix() throws {
        let dir = try directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func code(_ path: String) -> EncryptionError.Code? {
            do { _ = try RepositoryKey.load(path: path); return nil } catch { return error.code }
        }
        #expect(code("\(dir)/missing.key") == .keyUnreadable)
        try RepositoryKey.generate().write(to: "\(dir)/open.key")
        chmod("\(dir)/open.key", 0o640)
        #expect(code("\(dir)/open.key") == .keyTooOpen)
        do { _ = try RepositoryKey.load(path: "\(dir)/open.key") } catch { #expect(error.message.contains("chmod 600 \(dir)/open.key")) }
        _ = FileManager.default.createFile(atPath: "\(dir)/short.key", contents: Data("c2hvcnQ=\n".utf8), attributes: [.posixPermissions: 0o600])
        #expect(code("\(dir)/short.key") == .keyMalformed)
    }

    @Test func wrappedKeysUnwrapWithTheKeyThatWrappedThemOnly() throws {
        let a = try RepositoryKey.generate(), b = try RepositoryKey.generate()
        let (dataKey, wrapped) = try WrappedKey.generate(scope: "backups/b1", under: a)
        #expect(wrapped.keyFingerprint == a.fingerprint)
        // Key B alone: refused, naming both fingerprints.
        do {
            _ = try wrapped.unwrap(with: [b])
            Issue.record("unwrapped with the wrong key")
        } catch {
            #expect(error.code == .wrongKey)
            #expect(error.message.contains(a.fingerprint) && error.message.contains(b.fingerprint))
        }
        // B current, A old: unwraps; rewrapped under B (what rekey does): B alone suffices.
        let unwrapped = try wrapped.unwrap(with: [b, a])
        let rewrapped = WrappedKey.wrap(unwrapped, scope: wrapped.scope, under: b)
        let again = try rewrapped.unwrap(with: [b])
        let plain = Array("the same data key".utf8)
        let encryptor = try ObjectEncryptor(key: dataKey, name: "o")
        let cipher = encryptor.update(plain) + encryptor.finish()
        let decryptor = try ObjectDecryptor(key: again, name: "o")
        #expect(try decryptor.update(cipher) + decryptor.finish() == plain)
    }

    @Test func aWrappedKeyMovedToAnotherScopeDoesNotUnwrap() throws {
        let key = try RepositoryKey.generate()
        var wrapped = try WrappedKey.generate(scope: "backups/b1", under: key).1
        wrapped.scope = "backups/b2"
        do {
            _ = try wrapped.unwrap(with: [key])
            Issue.record("a moved wrapped key unwrapped")
        } catch {
            #expect(error.code == .tampered)
        }
        let json = try JSONEncoder().encode(wrapped)
        #expect(try JSONDecoder().decode(WrappedKey.self, from: json) == wrapped)
    }
}
