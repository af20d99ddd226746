import CSodium
import Foundation

/// A data key, encrypted under a repository key with XChaCha20-Poly1305 (IETF AEAD), bound to
/// its scope (the scope is the associated data: a wrapped key moved to another backup does not
/// unwrap). This small object is all that `rekey` rewrites.
public struct WrappedKey: Codable, Sendable, Equatable {
    public static let cipher = "xchacha20poly1305-ietf"
    public var format = 1
    public var cipher = Self.cipher
    /// The repository key that wrapped it: what `check` lists to say which old key is still needed.
    public var keyFingerprint: String
    /// What the data key encrypts, e.g. `backups/<id>` or `wal/<timeline>/<log>`.
    public var scope: String
    /// The data key's id, written in clear at the start of every object it encrypts.
    public var keyId: String
    public var nonce: Data
    public var ciphertext: Data

    /// A new random data key for `scope`, and its wrapped form.
    public static func generate(scope: String, under key: RepositoryKey) throws(EncryptionError) -> (DataKey, WrappedKey) {
        try Sodium.require()
        var id = [UInt8](repeating: 0, count: 8)
        randombytes_buf(&id, id.count)
        let dataKey = DataKey(id: id.map { String(format: "%02x", $0) }.joined(),
                              secret: SecretBytes(random: Int(crypto_secretstream_xchacha20poly1305_keybytes())))
        return (dataKey, wrap(dataKey, scope: scope, under: key))
    }

    /// `dataKey` wrapped under `key`: a fresh nonce every time.
    public static func wrap(_ dataKey: DataKey, scope: String, under key: RepositoryKey) -> WrappedKey {
        var nonce = [UInt8](repeating: 0, count: Int(crypto_aead_xchacha20poly1305_ietf_npubbytes()))
        randombytes_buf(&nonce, nonce.count)
        var ciphertext = [UInt8](repeating: 0, count: dataKey.secret.count + Int(crypto_aead_xchacha20poly1305_ietf_abytes()))
        var length: UInt64 = 0
        let associated = Array("\(scope)/\(dataKey.id)".utf8)
        dataKey.secret.withBytes { plain in
            key.secret.withBytes { wrapping in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(&ciphertext, &length, plain.baseAddress!, UInt64(plain.count),
                                                               associated, UInt64(associated.count), nil, nonce, wrapping.baseAddress!)
            }
        }
        return WrappedKey(keyFingerprint: key.fingerprint, scope: scope, keyId: dataKey.id, nonce: Data(nonce),
                          ciphertext: Data(ciphertext.prefix(Int(length))))
    }

    /// The data key, unwrapped with whichever of `keys` wrapped it (the current key, then old ones).
    public func unwrap(with keys: [RepositoryKey]) throws(EncryptionError) -> DataKey {
        try Sodium.require()
        guard let key = keys.first(where: { $0.fingerprint == keyFingerprint }) else {
            let given = keys.map(\.fingerprint).joined(separator: ", ")
            throw EncryptionError(.wrongKey, message: "the data key of \(scope) was wrapped by the repository key with fingerprint \(keyFingerprint), but the configured key(s) have \(given.isEmpty ? "none" : given): add that key's file to encryption.old_key_files, or set encryption.key_file to it")
        }
        let cipher = [UInt8](ciphertext)
        guard cipher.count > Int(crypto_aead_xchacha20poly1305_ietf_abytes()), nonce.count == Int(crypto_aead_xchacha20poly1305_ietf_npubbytes()) else {
            throw EncryptionError(.tampered, message: "the wrapped data key of \(scope) is malformed")
        }
        var plain = [UInt8](repeating: 0, count: cipher.count - Int(crypto_aead_xchacha20poly1305_ietf_abytes()))
        defer { sodium_memzero(&plain, plain.count) }
        var length: UInt64 = 0
        let associated = Array("\(scope)/\(keyId)".utf8)
        let nonce = [UInt8](self.nonce)
        let status = key.secret.withBytes { wrapping in
            crypto_aead_xchacha20poly1305_ietf_decrypt(&plain, &length, nil, cipher, UInt64(cipher.count),
                                                        associated, UInt64(associated.count), nonce, wrapping.baseAddress!)
        }
        guard status == 0 else {
            throw EncryptionError(.tampered, message: "the wrapped data key of \(scope) does not authenticate under the repository key \(keyFingerprint): it was altered, or moved from another scope")
        }
        return DataKey(id: keyId, secret: SecretBytes(copying: plain.prefix(Int(length))))
    }

    enum CodingKeys: String, CodingKey {
        case format, cipher, scope, nonce, ciphertext
        case keyFingerprint = "key_fingerprint"
        case keyId = "key_id"
    }
}

/// The key one backup's (or one WAL epoch's) objects are encrypted with.
public struct DataKey: Sendable {
    /// 16 hex digits, random: names the key in objects and in `keys/<scope>/<id>.json`.
    public let id: String
    let secret: SecretBytes
}
