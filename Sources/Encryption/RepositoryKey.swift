import CSodium
import Foundation
import PGBackdSupport

/// The repository key: 32 random bytes, base64 in a file of mode 0600. It never encrypts data
/// itself; it wraps the data keys (``WrappedKey``), so rotating it rewrites only those.
public struct RepositoryKey: Sendable {
    public static let byteCount = 32
    let secret: SecretBytes
    /// Names the key in errors, status and wrapped keys: the first 8 bytes of a BLAKE2b hash of
    /// it, in hex. It reveals nothing usable about the key.
    public let fingerprint: String
    /// Where it was read from, for messages (nil for a generated key not yet written).
    public let file: String?

    init(secret: SecretBytes, file: String?) {
        self.secret = secret
        self.file = file
        fingerprint = Self.fingerprint(of: secret)
    }

    /// A new random key.
    public static func generate() throws(EncryptionError) -> RepositoryKey {
        try Sodium.require()
        return RepositoryKey(secret: SecretBytes(random: byteCount), file: nil)
    }

    /// Reads a key file; refuses one that group or others may read, as ssh refuses such keys.
    public static func load(path: String) throws(EncryptionError) -> RepositoryKey {
        try Sodium.require()
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw EncryptionError(.keyUnreadable, message: "cannot read the encryption key file \(path): \(String(cString: strerror(errno))); create one with 'pgbackd keygen --output \(path)' or fix encryption.key_file")
        }
        guard info.st_mode & 0o077 == 0 else {
            throw EncryptionError(.keyTooOpen, message: "the encryption key file \(path) is readable by group or others (mode \(String(info.st_mode & 0o777, radix: 8))); refused: chmod 600 \(path)")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw EncryptionError(.keyUnreadable, message: "cannot read the encryption key file \(path): \(String(cString: strerror(errno)))")
        }
        guard let bytes = Data(base64Encoded: text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes.count == byteCount else {
            throw EncryptionError(.keyMalformed, message: "the encryption key file \(path) does not hold \(byteCount) bytes in base64 (as 'pgbackd keygen' writes)")
        }
        return RepositoryKey(secret: SecretBytes(copying: bytes), file: path)
    }

    /// Writes the key to a new file, mode 0600; an existing file is never overwritten.
    public func write(to path: String) throws {
        let text = secret.withBytes { Data($0).base64EncodedString() } + "\n"
        try DurableFile.createNew(path, with: Array(text.utf8), mode: 0o600)
    }

    static func fingerprint(of secret: SecretBytes) -> String {
        var digest = [UInt8](repeating: 0, count: 8)
        let context = Array("pgbackd repository key fingerprint".utf8)
        // Keyed by a context string, so the fingerprint is no general hash of the key.
        secret.withBytes { key in
            _ = crypto_generichash(&digest, digest.count, key.baseAddress!, UInt64(key.count), context, context.count)
        }
        return digest.map { String(format: "%02x", $0) }.joined()
    }
}
