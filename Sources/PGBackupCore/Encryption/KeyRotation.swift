import Encryption
import Foundation
import ObjectStorage

/// The repository keys' side of an encrypted stanza: which repository keys its data keys are
/// wrapped under, and `rekey`, which rewraps them under the current key.
public struct KeyRotation: Sendable {
    public let repository: Repository

    public init(repository: Repository) {
        self.repository = repository
    }

    /// The wrapped keys are stored in clear: read them below the encrypting layer.
    var storage: any ObjectStorage { (repository.storage as? EncryptedStorage)?.base ?? repository.storage }

    /// How many data keys are wrapped under each repository key (by fingerprint).
    public func census() async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for (_, wrapped) in try await wrappedKeys() { counts[wrapped.keyFingerprint, default: 0] += 1 }
        return counts
    }

    public struct Outcome: Sendable, Encodable {
        /// Data keys rewrapped by this run.
        public var rewrapped: Int
        /// Data keys already under the current key (done by an earlier, interrupted run).
        public var alreadyCurrent: Int
        public var keyFingerprint: String
    }

    /// Rewraps every data key not yet under the current repository key, one small object at a
    /// time (each replaced atomically: a run killed half-way leaves every key readable with the
    /// old or the new key, and the next run goes on), then records the current key in the marker.
    /// The backups and WAL themselves are not touched.
    public func rekey() async throws -> Outcome {
        let keys = repository.encryptionKeys
        guard let current = keys.first else {
            throw EncryptionError(.keyNotConfigured, message: "rekey needs [encryption] key_file (the new key) and old_key_files (the keys to rotate away from)")
        }
        var outcome = Outcome(rewrapped: 0, alreadyCurrent: 0, keyFingerprint: current.fingerprint)
        for (key, wrapped) in try await wrappedKeys() {
            try Task.checkCancellation()
            guard wrapped.keyFingerprint != current.fingerprint else {
                outcome.alreadyCurrent += 1
                continue
            }
            let dataKey = try wrapped.unwrap(with: keys)
            let rewrapped = WrappedKey.wrap(dataKey, scope: wrapped.scope, under: current)
            try await storage.put(key: key, bytes: Array(try JSONEncoder().encode(rewrapped)))
            outcome.rewrapped += 1
        }
        try await repository.recordEncryption()
        return outcome
    }

    private func wrappedKeys() async throws -> [(String, WrappedKey)] {
        var result: [(String, WrappedKey)] = []
        for object in try await storage.list(prefix: repository.layout.keysPrefix) {
            let bytes = try await storage.getAll(key: object.key)
            guard let wrapped = try? JSONDecoder().decode(WrappedKey.self, from: Data(bytes)) else {
                throw EncryptionError(.tampered, message: "\(object.key) is not a wrapped data key")
            }
            result.append((object.key, wrapped))
        }
        return result
    }
}
